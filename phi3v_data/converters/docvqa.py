"""DocVQA: one record per question, one image file per distinct document.

SRC layouts: the HF parquet shards of ``HuggingFaceM4/DocumentVQA`` (``data/{train,validation,test}-*.parquet``),
``nielsr/docvqa_1200_examples`` parquet, the_cauldron ``docvqa`` parquet, or the official SP-DocVQA
``*_v1.0.json`` files plus ``documents/``. Questions without answers (the test split) are left out and
counted. Output record::

    {"id": "1001", "source": "docvqa", "conversations": [{"images": ["train/doc17.png"], "user": "What is the
     date?", "assistant": "May 5, 1998"}], "metadata": {"question_id": 1001, "doc_id": 17, "answers":
     ["May 5, 1998", "5 May 1998"]}}
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from phi3v_data.converters.base import Converter, ItemSkipped, Plan, Task, missing_source
from phi3v_data.converters.cauldron import cauldron_tasks, text_turns, write_images
from phi3v_data.converters.images import (
    cell_image_bytes,
    check_max_pixels,
    content_name,
    downscaled,
    read_image_file,
    store_image,
)
from phi3v_data.converters.tables import (
    parquet_columns,
    parquet_files,
    parquet_split,
    read_parquet_cell,
    read_parquet_rows,
)
from phi3v_data.errors import SourceLayoutError

HF_COLUMNS = {"questionId", "question", "image", "docId", "answers"}
NIELSR_COLUMNS = {"image", "query", "answers"}
CAULDRON_COLUMNS = {"images", "texts"}
# InfographicVQA (RRC JSON or lmms-lab/DocVQA's InfographicVQA config): another dataset, never mixed in.
INFOGRAPHIC_COLUMNS = {"image_local_name", "image_url", "operation/reasoning"}
# SP-DocVQA question files: `train_v1.0_withQT.json`, `val_v1.0.json`, `test_v1.0.json`. Other JSON under
# SRC (the OCR files of spdocvqa_ocr/, one per page) is not read.
QUESTION_FILE = re.compile(r"(?P<split>train|val|test)_v\d+(?:\.\d+)?(?P<qt>_withQT)?\.json", re.IGNORECASE)
INFOGRAPHIC_FILE = re.compile(r"infographics?vqa_.*\.json", re.IGNORECASE)
IMAGE_FOLDERS = ("spdocvqa_images", "documents", "images")
LAYOUTS = (
    "HuggingFaceM4/DocumentVQA or lmms-lab/DocVQA parquet (questionId, question, image, docId, answers), "
    "nielsr/docvqa_1200_examples parquet, the_cauldron docvqa parquet, or SP-DocVQA "
    "spdocvqa_qas/{train,val,test}_v1.0[_withQT].json with spdocvqa_images/ (or documents/)"
)


def _answers(value: Any) -> list[str]:
    return [str(a) for a in (value or []) if a is not None and str(a).strip()]


def _query_text(query: Any) -> str:
    if isinstance(query, dict):
        return str(query.get("en") or next((v for v in query.values() if v), ""))
    return str(query or "")


def _parquet_kind(columns: set[str]) -> str:
    if columns >= CAULDRON_COLUMNS:
        return "cauldron"
    if columns & INFOGRAPHIC_COLUMNS:
        return "infographicvqa"
    if columns >= HF_COLUMNS:
        return "hf"
    if columns >= NIELSR_COLUMNS:
        return "nielsr"
    return "other"


@dataclass
class DocVQAConverter(Converter):
    src: Path
    prompt_suffix: str = ""
    max_pixels: int | None = None

    name: ClassVar[str] = "docvqa"
    splits: ClassVar[tuple[str, ...]] = ("train", "validation", "val", "test")

    def __post_init__(self) -> None:
        self.src = Path(self.src)
        check_max_pixels(self.max_pixels)

    def options(self) -> dict[str, Any]:
        return {"src": str(self.src), "prompt_suffix": self.prompt_suffix, "max_pixels": self.max_pixels}

    def plan(self) -> Plan:
        if not self.src.exists():
            raise missing_source(self.src)
        by_kind: dict[str, list[Path]] = {}
        for file in parquet_files(self.src):
            by_kind.setdefault(_parquet_kind(set(parquet_columns(file))), []).append(file)
        not_reached = [f"{f}: an InfographicVQA shard, not DocVQA" for f in by_kind.pop("infographicvqa", [])]
        not_reached += [
            f"{f}: columns {', '.join(sorted(parquet_columns(f)))} are not a DocVQA layout"
            for f in by_kind.pop("other", [])
        ]
        if len(by_kind) > 1:
            found = "; ".join(f"{kind}: {files[0]}" for kind, files in sorted(by_kind.items()))
            raise SourceLayoutError(f"{self.src} mixes several DocVQA parquet layouts ({found}); pass one folder")
        if by_kind:
            kind, files = next(iter(by_kind.items()))
            if kind == "cauldron":
                plan = Plan(tasks=[Task(t.key, t.split, ("cauldron", *t.payload)) for t in cauldron_tasks(files)])
            else:
                plan = self._plan_hf(files) if kind == "hf" else self._plan_nielsr(files)
        else:
            plan = self._plan_official(not_reached)
        plan.not_reached = not_reached + plan.not_reached
        return plan

    def _group(self, split: str, rows: list[tuple[Any, str, Any, list[str], Any]]) -> tuple[list[Task], int]:
        """Groups (question id, question, doc id, answers, image ref) rows into one task per document."""
        docs: dict[Any, list] = {}
        unanswered = 0
        for qid, question, doc_id, answers, image_ref in rows:
            if not answers:
                unanswered += 1
                continue
            docs.setdefault(doc_id, [image_ref, []])[1].append((qid, question, answers))
        tasks = [
            Task(key=f"{split}/doc{doc_id}", split=split, payload=("doc", doc_id, image_ref, questions))
            for doc_id, (image_ref, questions) in docs.items()
        ]
        return tasks, unanswered

    def _plan_hf(self, files: list[Path]) -> Plan:
        tasks, unanswered = [], 0
        by_split: dict[str, list] = {}
        for file in files:
            rows = read_parquet_rows(file, ["questionId", "question", "docId", "answers"])
            by_split.setdefault(parquet_split(file), []).extend(
                (r["questionId"], r["question"], r["docId"], _answers(r["answers"]), ("parquet", str(file), i))
                for i, r in enumerate(rows)
            )
        for split, rows in by_split.items():
            split_tasks, missing = self._group(split, rows)
            tasks += split_tasks
            unanswered += missing
        return Plan(tasks=tasks, excluded={"unanswered": unanswered} if unanswered else {})

    def _question_files(self, not_reached: list[str]) -> list[Path]:
        """SP-DocVQA question files; of `X_v1.0.json` and `X_v1.0_withQT.json` (same questions) the latter."""
        if self.src.is_file():
            return [self.src]
        found = sorted(p for p in self.src.rglob("*.json") if QUESTION_FILE.fullmatch(p.name))
        not_reached += [
            f"{p}: an InfographicVQA file, not DocVQA"
            for p in sorted(self.src.rglob("*.json"))
            if INFOGRAPHIC_FILE.fullmatch(p.name)
        ]
        chosen: dict[tuple[Path, str], Path] = {}
        for path in found:
            match = QUESTION_FILE.fullmatch(path.name)
            key = (path.parent, match["split"].lower())
            if key not in chosen or match["qt"]:
                if key in chosen:
                    not_reached.append(f"{chosen[key]}: the same questions as {path}, which was read")
                chosen[key] = path
            else:
                not_reached.append(f"{path}: the same questions as {chosen[key]}, which was read")
        return sorted(chosen.values())

    def _plan_official(self, not_reached: list[str]) -> Plan:
        files = self._question_files(not_reached)
        if not files:
            found = f" (found only: {'; '.join(not_reached)})" if not_reached else ""
            raise SourceLayoutError(f"no DocVQA data under {self.src}{found}; expected {LAYOUTS}")
        tasks, unanswered = [], 0
        for file in files:
            try:
                content = json.loads(file.read_text(encoding="utf-8"))
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise SourceLayoutError(f"{file} is not valid JSON ({exc}); re-download or re-extract it") from exc
            data = content.get("data") if isinstance(content, dict) else None
            if not isinstance(data, list):
                raise SourceLayoutError(f"{file} has no 'data' list of questions; expected an SP-DocVQA question file")
            split = str(content.get("dataset_split") or QUESTION_FILE.fullmatch(file.name)["split"])
            rows = []
            for number, d in enumerate(data):
                if isinstance(d, dict) and "image_local_name" in d and "docId" not in d:
                    raise SourceLayoutError(
                        f"{file} holds InfographicVQA questions (image_local_name, no docId), not DocVQA; "
                        "move it out of SRC"
                    )
                try:
                    rows.append(
                        (
                            d["questionId"],
                            d["question"],
                            d["docId"],
                            _answers(d.get("answers")),
                            ("file", str(file), d["image"]),
                        )
                    )
                except (KeyError, TypeError) as exc:
                    raise SourceLayoutError(
                        f"{file} data[{number}] lacks {exc}; expected questionId, question, docId and image"
                    ) from exc
            split_tasks, missing = self._group(split, rows)
            tasks += split_tasks
            unanswered += missing
        return Plan(tasks=tasks, excluded={"unanswered": unanswered} if unanswered else {})

    def _plan_nielsr(self, files: list[Path]) -> Plan:
        tasks, unanswered = [], 0
        numbered: dict[str, int] = {}
        for file in files:
            split = parquet_split(file)
            columns = ["query", "answers"] + (["id"] if "id" in parquet_columns(file) else [])
            for i, row in enumerate(read_parquet_rows(file, columns)):
                number = numbered[split] = numbered.get(split, -1) + 1
                answers = _answers(row["answers"])
                if not answers:
                    unanswered += 1
                    continue
                qid = row.get("id", f"{split}-{number:010d}")
                questions = [(qid, _query_text(row["query"]), answers)]
                tasks.append(Task(f"{file.name}:{i}", split, ("doc", None, ("parquet", str(file), i), questions)))
        return Plan(tasks=tasks, excluded={"unanswered": unanswered} if unanswered else {})

    def _user(self, question: str) -> str:
        return question + self.prompt_suffix

    def process(self, task: Task, images_dir: Path) -> list[dict[str, Any]]:
        notes: dict[str, dict] = {}
        if task.payload[0] == "cauldron":
            _, file, row, split_row, texts = task.payload
            turns = text_turns(texts)
            images = write_images(Path(file), row, task.split, images_dir, 1, self.max_pixels, notes)
            return [
                {
                    "id": f"{task.split}-{split_row:08d}-{t}",
                    "conversations": [{"images": images, "user": self._user(user), "assistant": answer}],
                    "metadata": {"source_row": split_row, "answers": [answer]} | downscaled(notes),
                }
                for t, (user, answer) in enumerate(turns)
            ]
        _, doc_id, image_ref, questions = task.payload
        kind, file, where = image_ref
        if kind == "parquet":
            what = f"{file} row {where}"
            data = cell_image_bytes(read_parquet_cell(Path(file), where, "image"), Path(file).parent, what)
        else:
            path = self._document_path(Path(file), where)
            what, data = str(path), read_image_file(path)
        stem = f"doc{doc_id}" if doc_id is not None else content_name(data)
        rel = store_image(images_dir, f"{task.split}/{stem}", data, what, self.max_pixels, notes)
        records = []
        for qid, question, answers in questions:
            metadata: dict[str, Any] = {"question_id": qid}
            if doc_id is not None:
                metadata["doc_id"] = doc_id
            metadata["answers"] = answers
            records.append(
                {
                    "id": str(qid),
                    "conversations": [{"images": [rel], "user": self._user(question), "assistant": answers[0]}],
                    "metadata": metadata | downscaled(notes),
                }
            )
        return records

    def _document_path(self, question_file: Path, image: str) -> Path:
        """``documents/<name>.png`` relative to the question file's folder, SRC, or their parents; else the bare
        name in an image folder there: the RRC download puts the pages in ``spdocvqa_images/``."""
        bases = (question_file.parent, self.src, question_file.parent.parent, self.src.parent)
        candidates = [base / image for base in bases]
        candidates += [base / folder / Path(image).name for base in bases for folder in IMAGE_FOLDERS]
        for candidate in candidates:
            if candidate.is_file():
                return candidate
        raise ItemSkipped(
            f"missing document image {image} (looked beside {question_file}, in {self.src} and in their "
            f"{'/, '.join(IMAGE_FOLDERS)}/ folders)"
        )
