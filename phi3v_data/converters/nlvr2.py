"""NLVR2: one record per sentence, with the left (``-img0``) then the right (``-img1``) image.

SRC is the official folder (``data/{train,dev,test1}.json`` JSON lines plus ``images/``, where train
has a ``<directory>`` level, which some copies flatten) or the_cauldron ``nlvr2`` parquet. Output record::

    {"id": "dev-850-0-0", "source": "nlvr2", "conversations": [{"images": ["dev/dev-850-0-img0.png",
     "dev/dev-850-0-img1.png"], "user": "The left image contains twice the number of dogs as the right image.\\nIs
     this sentence true for the left and right images? Answer True or False.", "assistant": "False"}],
     "metadata": {"identifier": "dev-850-0-0", "label": false}}
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

OFFICIAL_SPLITS = ("train", "dev", "test1", "test2")
QUESTION = "Is this sentence true for the left and right images? Answer True or False."


def nlvr2_prompt(sentence: str) -> str:
    return f"{sentence}\n{QUESTION}"


def true_false(answer: Any) -> str | None:
    text = str(answer).strip().lower().rstrip(".!")
    return {"true": "True", "false": "False", "yes": "True", "no": "False"}.get(text.split()[0] if text else "")


@dataclass
class Nlvr2Converter(FolderOrCauldronConverter):
    name: ClassVar[str] = "nlvr2"
    splits: ClassVar[tuple[str, ...]] = OFFICIAL_SPLITS
    cauldron_images: ClassVar[int] = 2
    normalize_answer = staticmethod(true_false)

    @staticmethod
    def answer_label(answer: str) -> bool:
        return answer == "True"

    def official_plan(self) -> Plan:
        data_dir = self.src / "data"
        present = [data_dir / f"{s}.json" for s in OFFICIAL_SPLITS if (data_dir / f"{s}.json").is_file()]
        if not present:
            raise SourceLayoutError(
                f"no {data_dir}/{{train,dev,test1}}.json and no the_cauldron nlvr2 parquet shards under {self.src}"
            )
        tasks = []
        for path in present:
            for number, example, error in iter_json_lines(path):
                key = f"data/{path.name} line {number}"
                tasks.append(Task(key, path.stem, ("error", error) if example is None else ("example", example)))
        return Plan(tasks=tasks)

    def _pair(self, split: str, example: dict[str, Any]) -> list[Path]:
        prefix = str(example["identifier"]).rsplit("-", 1)[0]
        folder = self.src / "images" / split
        if not folder.is_dir() and (self.src / split).is_dir():
            folder = self.src / split
        folders = [folder]
        if example.get("directory") is not None:
            folders.insert(0, folder / str(example["directory"]))
        paths = []
        for side in ("img0", "img1"):
            found = [path for place in folders for path in sorted(place.glob(f"{prefix}-{side}.*"))]
            if not found:
                raise ItemSkipped(f"missing image {folders[0] / (prefix + '-' + side + '.png')}")
            paths.append(found[0])
        return paths

    def official_records(self, task: Task, images_dir: Path) -> list[dict[str, Any]]:
        example = task.payload[1]
        try:
            identifier, sentence = str(example["identifier"]), str(example["sentence"])
        except KeyError as exc:
            raise ItemSkipped(f"missing field {exc}") from exc
        answer = true_false(example.get("label"))
        if answer is None:
            raise ItemSkipped(f"label {example.get('label')!r} is not True/False")
        images: list[str] = []
        notes: dict[str, dict] = {}
        for path in self._pair(task.split, example):
            data = read_image_file(path)
            images.append(store_image(images_dir, f"{task.split}/{path.stem}", data, str(path), self.max_pixels, notes))
        return [
            {
                "id": identifier,
                "conversations": [{"images": images, "user": nlvr2_prompt(sentence), "assistant": answer}],
                "metadata": {"identifier": identifier, "label": answer == "True"} | downscaled(notes),
            }
        ]
