"""A tiny NLVR2 look-alike: ``data/{train,dev,test1}.json`` JSON lines and ``images/``.

Left images (``-img0``) are red, right images (``-img1``) blue, so the order can be checked by pixels;
each side shows a different number of white discs.
"""

from __future__ import annotations

import json
from pathlib import Path

from phi3v_data.io import atomic_write_bytes, atomic_write_text
from phi3v_data.samples.images import picture

LEFT, RIGHT = (200, 40, 40), (40, 40, 200)
# split -> list of (pair prefix, directory or None, left discs, right discs, [(sentence, label)])
PAIRS = {
    "train": [
        (
            "train-101-0",
            12,
            2,
            1,
            [
                ("The left image has more discs than the right image.", "True"),
                ("Both images contain exactly one disc.", "False"),
            ],
        ),
        (
            "train-102-1",
            47,
            1,
            3,
            [("The right image shows three discs.", "True"), ("The left image shows two discs.", "False")],
        ),
    ],
    "dev": [
        (
            "dev-850-0",
            None,
            3,
            3,
            [("Both images have the same number of discs.", "True"), ("The right image has no discs.", "False")],
        ),
        ("dev-851-2", None, 0, 2, [("The left image has no discs.", "True")]),
    ],
    "test1": [
        (
            "test1-7-1",
            None,
            1,
            2,
            [
                ("The right image has twice as many discs as the left.", "True"),
                ("There are four discs in total.", "False"),
            ],
        )
    ],
}


def write_nlvr2_sample(out: Path) -> None:
    out = Path(out)
    for split, pairs in PAIRS.items():
        lines = []
        for prefix, directory, left, right, sentences in pairs:
            folder = out / "images" / split / (str(directory) if directory is not None else "")
            atomic_write_bytes(folder / f"{prefix}-img0.png", picture((128, 96), LEFT, ["left"], left))
            atomic_write_bytes(folder / f"{prefix}-img1.png", picture((128, 96), RIGHT, ["right"], right))
            for n, (sentence, label) in enumerate(sentences):
                entry = {"identifier": f"{prefix}-{n}", "sentence": sentence, "label": label}
                if directory is not None:
                    entry["directory"] = directory
                entry.update(
                    {
                        "left_url": f"https://example.org/{prefix}-0.jpg",
                        "right_url": f"https://example.org/{prefix}-1.jpg",
                        "writer": "w1",
                        "synset": "disc",
                        "query": "discs",
                    }
                )
                lines.append(json.dumps(entry) + "\n")
        atomic_write_text(out / "data" / f"{split}.json", "".join(lines))
