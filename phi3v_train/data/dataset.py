"""The training dataset: a record's images are opened and processed in ``__getitem__``, i.e. in the
DataLoader workers, so the main process only moves tensors."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch.utils.data import Dataset

from phi3v_train.data.image_loading import load_image
from phi3v_train.data.records import SourcedRecord
from phi3v_train.errors import DataError
from phi3v_train.model.processing import IGNORE_INDEX, Phi3VProcessor


def check_has_labels(labels: Sequence[int], where: str) -> None:
    """A record with no trained token would silently add loss 0: refuse it."""
    if all(label == IGNORE_INDEX for label in labels):
        raise DataError(f"{where}: every label is masked (-100), so the record would train on nothing")


class ConversationDataset(Dataset):
    """Items: ``input_ids``/``labels`` (lists), ``pixel_values``/``image_sizes`` (tensors or None), ``id``."""

    def __init__(self, records: Sequence[SourcedRecord], processor: Phi3VProcessor) -> None:
        self.records = list(records)
        self.processor = processor

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict[str, Any]:
        item = self.records[index]
        images = []
        for path in item.image_paths():
            try:
                images.append(load_image(path))
            except DataError as exc:
                raise DataError(f"{item.where}: {exc}") from exc
        encoded = self.processor.encode_conversation(item.record.conversations, images)
        check_has_labels(encoded.labels, item.where)
        return {
            "id": item.record.id,
            "input_ids": encoded.input_ids,
            "labels": encoded.labels,
            "pixel_values": encoded.pixel_values,
            "image_sizes": encoded.image_sizes,
        }
