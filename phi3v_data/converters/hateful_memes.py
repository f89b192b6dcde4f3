"""Hateful Memes: one record per labeled meme, answer ``yes`` (hateful) or ``no``.

SRC is the official folder (``img/`` plus ``train.jsonl``, ``dev_seen.jsonl``, ``dev_unseen.jsonl``,
``test_seen.jsonl``, ``test_unseen.jsonl``; the phase-1 release has ``dev.jsonl`` and ``test.jsonl``; every
``*.jsonl`` beside ``img/`` is a split named after it) or the_cauldron ``hateful_memes`` parquet. Lines
without a label are left out and counted in the report. Output record::

    {"id": "42953", "source": "hateful_memes", "conversations": [{"images": ["train/42953.png"], "user": "Meme
     text: its their character not their color that matters\\nIs this meme hateful? Answer yes or no.",
     "assistant": "no"}], "metadata": {"meme_id": 42953, "label": 0, "image": "img/42953.png"}}
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from phi3v_data.converters.base import ItemSkipped, Plan, Task
from phi3v_data.converters.cauldron import FolderOrCauldronConverter
from phi3v_data.converters.images import downscaled, read_image_file, store_image
from phi3v_data.converters.tables import iter_json_lines
from phi3v_data.errors import SourceLayoutError

OFFICIAL_SPLITS = ("train", "dev", "dev_seen", "dev_unseen", "test", "test_seen", "test_unseen")
QUESTION = "Is this meme hateful? Answer yes or no."


def meme_prompt(text: str) -> str:
    return f"Meme text: {text}\n{QUESTION}"


def yes_no(answer: str) -> str | None:
    word = answer.strip().lower().rstrip(".!").split()[0] if answer.strip() else ""
    return {"yes": "yes", "no": "no", "true": "yes", "false": "no"}.get(word)


@dataclass
class HatefulMemesConverter(FolderOrCauldronConverter):
    name: ClassVar[str] = "hateful-memes"
    splits: ClassVar[tuple[str, ...]] = OFFICIAL_SPLITS
    cauldron_images: ClassVar[int] = 1
    normalize_answer = staticmethod(yes_no)

    @staticmethod
    def answer_label(answer: str) -> int:
        return int(answer == "yes")

    def official_plan(self) -> Plan:
        found = {p.stem for p in self.src.glob("*.jsonl")} if self.src.is_dir() else set()
        present = [s for s in OFFICIAL_SPLITS if s in found] + sorted(found - set(OFFICIAL_SPLITS))
        if not present:
            raise SourceLayoutError(
                f"{self.src} has neither the official files ({', '.join(s + '.jsonl' for s in OFFICIAL_SPLITS)} "
                "beside img/) nor the_cauldron hateful_memes parquet shards"
            )
        tasks, unlabeled = [], 0
        for split in present:
            path = self.src / f"{split}.jsonl"
            for number, meme, error in iter_json_lines(path):
                key = f"{split}.jsonl line {number}"
                if meme is None:
                    tasks.append(Task(key, split, ("error", error)))
                elif meme.get("label") is None:
                    unlabeled += 1
                else:
                    tasks.append(Task(key, split, ("meme", meme)))
        return Plan(tasks=tasks, excluded={"unlabeled": unlabeled} if unlabeled else {})

    def official_records(self, task: Task, images_dir: Path) -> list[dict[str, Any]]:
        meme = task.payload[1]
        try:
            meme_id, image, text, label = meme["id"], str(meme["img"]), str(meme["text"]), int(meme["label"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ItemSkipped(f"expected id, img, text and a 0/1 label: {exc!r}") from exc
        if label not in (0, 1):
            raise ItemSkipped(f"label {label} is not 0 or 1")
        data = read_image_file(self.src / image)
        notes: dict[str, dict] = {}
        rel = store_image(
            images_dir, f"{task.split}/{Path(image).stem}", data, str(self.src / image), self.max_pixels, notes
        )
        return [
            {
                "id": str(meme_id),
                "conversations": [{"images": [rel], "user": meme_prompt(text), "assistant": "yes" if label else "no"}],
                "metadata": {"meme_id": meme_id, "label": label, "image": image} | downscaled(notes),
            }
        ]
