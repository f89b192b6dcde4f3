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
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from phi3v_data.converters.base import Converter, ItemSkipped, Plan, Task, missing_source
from phi3v_data.converters.cauldron import cauldron_tasks, is_cauldron, text_turns, write_images
from phi3v_data.converters.images import (
    cell_image_bytes,
    content_name,
    image_extension,
    read_image_file,
    write_once,
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


def _answers(value: Any) -> list[str]:
    return [str(a) for a in (value or []) if str(a).strip()]


def _query_text(query: Any) -> str:
    if isinstance(query, dict):
        return str(query.get("en") or next((v for v in query.values() if v), ""))
    return str(query or "")


@dataclass
class DocVQAConverter(Converter):
    src: Path
    prompt_suffix: str = ""

    name: ClassVar[str] = "docvqa"
    splits: ClassVar[tuple[str, ...]] = ("train", "validation", "val", "test")

    def __post_init__(self) -> None:
        self.src = Path(self.src)

    def options(self) -> dict[str, Any]:
        return {"src": str(self.src), "prompt_suffix": self.prompt_suffix}

    def plan(self) -> Plan:
        if not self.src.exists():
            raise missing_source(self.src)
        files = parquet_files(self.src)
        if files:
            if is_cauldron(files):
                return Plan(tasks=[Task(t.key, t.split, ("cauldron", *t.payload)) for t in cauldron_tasks(files)])
            columns = set(parquet_columns(files[0]))
            if columns >= HF_COLUMNS:
                return self._plan_hf(files)
            if columns >= NIELSR_COLUMNS:
                return self._plan_nielsr(files)
            raise SourceLayoutError(
                f"{files[0]} has columns {sorted(columns)}; expected the HuggingFaceM4/DocumentVQA, "
                "nielsr/docvqa_1200_examples or the_cauldron docvqa layout"
            )
        json_files = sorted(self.src.rglob("*.json")) if self.src.is_dir() else [self.src]
        if json_files:
            return self._plan_official(json_files)
        raise SourceLayoutError(f"no parquet shards or SP-DocVQA *_v1.0.json files under {self.src}")

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

    def _plan_official(self, files: list[Path]) -> Plan:
        tasks, unanswered = [], 0
        for file in files:
            try:
                content = json.loads(file.read_text(encoding="utf-8"))
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise SourceLayoutError(f"{file} is not valid JSON: {exc}") from exc
            if not isinstance(content, dict) or not isinstance(content.get("data"), list):
                continue
            split = str(content.get("dataset_split") or file.name.split("_")[0])
            rows = [
                (
                    d["questionId"],
                    d["question"],
                    d["docId"],
                    _answers(d.get("answers")),
                    ("file", str(file), d["image"]),
                )
                for d in content["data"]
            ]
            split_tasks, missing = self._group(split, rows)
            tasks += split_tasks
            unanswered += missing
        if not tasks and not unanswered:
            raise SourceLayoutError(f"no SP-DocVQA question files (with a 'data' list) under {self.src}")
        return Plan(tasks=tasks, excluded={"unanswered": unanswered} if unanswered else {})

    def _plan_nielsr(self, files: list[Path]) -> Plan:
        tasks, unanswered = [], 0
        for file in files:
            split = parquet_split(file)
            columns = ["query", "answers"] + (["id"] if "id" in parquet_columns(file) else [])
            for i, row in enumerate(read_parquet_rows(file, columns)):
                answers = _answers(row["answers"])
                if not answers:
                    unanswered += 1
                    continue
                qid = row.get("id", f"{split}-{i:010d}")
                questions = [(qid, _query_text(row["query"]), answers)]
                tasks.append(Task(f"{file.name}:{i}", split, ("doc", None, ("parquet", str(file), i), questions)))
        return Plan(tasks=tasks, excluded={"unanswered": unanswered} if unanswered else {})

    def _user(self, question: str) -> str:
        return question + self.prompt_suffix

    def process(self, task: Task, images_dir: Path) -> list[dict[str, Any]]:
        if task.payload[0] == "cauldron":
            _, file, row, texts = task.payload
            turns = text_turns(texts)
            images = write_images(Path(file), row, task.split, images_dir, expected=1)
            return [
                {
                    "id": f"{task.split}-{row:08d}-{t}",
                    "conversations": [{"images": images, "user": self._user(user), "assistant": answer}],
                    "metadata": {"source_row": task.key, "answers": [answer]},
                }
                for t, (user, answer) in enumerate(turns)
            ]
        _, doc_id, image_ref, questions = task.payload
        kind, file, where = image_ref
        if kind == "parquet":
            data = cell_image_bytes(read_parquet_cell(Path(file), where, "image"), Path(file).parent, task.key)
        else:
            data = read_image_file(self._document_path(Path(file), where))
        ext = image_extension(data, task.key)
        stem = f"doc{doc_id}" if doc_id is not None else content_name(data)
        rel = f"{task.split}/{stem}.{ext}"
        write_once(images_dir / rel, data)
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
                    "metadata": metadata,
                }
            )
        return records

    def _document_path(self, question_file: Path, image: str) -> Path:
        """``documents/<name>.png`` is relative to the question file's folder, SRC, or their parents."""
        for base in (question_file.parent, self.src, question_file.parent.parent, self.src.parent):
            if (base / image).is_file():
                return base / image
        raise ItemSkipped(f"missing document image {image} (looked beside {question_file} and in {self.src})")
