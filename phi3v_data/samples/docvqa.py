"""A tiny ``HuggingFaceM4/DocumentVQA`` look-alike: rendered documents in ``data/{split}-00000-of-00001.parquet``.

Several questions share each document; test questions have no answers, as on the hub.
"""

from __future__ import annotations

import io
from pathlib import Path

from phi3v_data.converters.tables import pyarrow_parquet
from phi3v_data.io import atomic_write_bytes
from phi3v_data.samples.images import picture

# split -> list of (docId, document lines, [(questionId, question, answers)])
DOCUMENTS = {
    "train": [
        (
            101,
            ["INVOICE No. 4471", "Date: May 5, 1998", "Total: $45.00"],
            [(1001, "What is the invoice number?", ["4471", "No. 4471"]), (1002, "What is the total?", ["$45.00"])],
        ),
        (
            102,
            ["MEMORANDUM", "To: R. J. Reynolds", "Re: budget 1996"],
            [
                (1003, "Who is the memo addressed to?", ["R. J. Reynolds"]),
                (1004, "What year is the budget for?", ["1996"]),
            ],
        ),
        (
            103,
            ["Table 2. Results", "Group A: 12.5%", "Group B: 7.1%"],
            [(1005, "What is the value for Group B?", ["7.1%", "7.1"])],
        ),
    ],
    "validation": [
        (
            201,
            ["LETTER", "Dear Dr. Smith,", "Sincerely, A. Lee"],
            [(2001, "Who signed the letter?", ["A. Lee"]), (2002, "Who is the letter for?", ["Dr. Smith", "Smith"])],
        ),
    ],
    "test": [(301, ["FAX COVER", "Pages: 3"], [(3001, "How many pages?", []), (3002, "What kind of form?", [])])],
}


def write_docvqa_sample(out: Path) -> None:
    import pyarrow as pa

    pq = pyarrow_parquet()
    out = Path(out)
    for split, documents in DOCUMENTS.items():
        rows = []
        for doc_id, lines, questions in documents:
            image = picture((400, 300), (250, 250, 245), lines)
            for question_id, question, answers in questions:
                rows.append(
                    {
                        "questionId": question_id,
                        "question": question,
                        "question_types": ["form"],
                        "image": {"bytes": image, "path": f"doc{doc_id}.png"},
                        "docId": doc_id,
                        "ucsf_document_id": f"u{doc_id}",
                        "ucsf_document_page_no": "1",
                        "answers": answers,
                    }
                )
        schema = pa.schema(
            [
                ("questionId", pa.int64()),
                ("question", pa.string()),
                ("question_types", pa.list_(pa.string())),
                ("image", pa.struct([("bytes", pa.binary()), ("path", pa.string())])),
                ("docId", pa.int64()),
                ("ucsf_document_id", pa.string()),
                ("ucsf_document_page_no", pa.string()),
                ("answers", pa.list_(pa.string())),
            ]
        )
        buffer = io.BytesIO()
        pq.write_table(pa.Table.from_pylist(rows, schema=schema), buffer)
        atomic_write_bytes(out / "data" / f"{split}-00000-of-00001.parquet", buffer.getvalue())
