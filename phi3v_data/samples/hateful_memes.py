"""A tiny Hateful Memes look-alike: ``img/<id>.png`` plus the five official JSON-lines files.

``test_seen.jsonl`` has no labels, as in the first release.
"""

from __future__ import annotations

import json
from pathlib import Path

from phi3v_data.io import atomic_write_bytes, atomic_write_text
from phi3v_data.samples.images import picture

# split -> (id, text, label or None)
MEMES = {
    "train": [
        (10423, "when you finally finish the report", 0),
        (11257, "they all look the same to me", 1),
        (12098, "monday mood: coffee first", 0),
        (13764, "go back where you came from", 1),
        (14512, "my cat judging my life choices", 0),
        (15830, "people like that should not exist", 1),
    ],
    "dev_seen": [(20117, "weekend plans: sleep", 0), (21643, "that group ruins everything", 1)],
    "dev_unseen": [(30452, "me explaining memes to my mom", 0), (31978, "send them all away", 1)],
    "test_seen": [(40215, "nobody:\nme at 3am: snacks", None), (41366, "just another day at work", None)],
    "test_unseen": [(50721, "they are animals", 1), (51204, "sunset at the beach", 0)],
}


def write_hateful_memes_sample(out: Path) -> None:
    out = Path(out)
    for split, memes in MEMES.items():
        lines = []
        for meme_id, text, label in memes:
            colour = (200, 60, 60) if label else (60, 160, 90)
            atomic_write_bytes(out / "img" / f"{meme_id}.png", picture((160, 120), colour, text.split("\n"), 2))
            entry = {"id": meme_id, "img": f"img/{meme_id}.png"}
            if label is not None:
                entry["label"] = label
            entry["text"] = text
            lines.append(json.dumps(entry) + "\n")
        atomic_write_text(out / f"{split}.jsonl", "".join(lines))
