"""`--limit N`: a seeded random subset of a dataset's images (and, for retrieval, their captions)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace

import numpy as np

from ..errors import ClipbenchError
from .base import ClassificationData, RetrievalData


@dataclass
class SubsetImages:
    parent: object
    indices: np.ndarray

    def __post_init__(self):
        digest = hashlib.sha256(self.parent.fingerprint.encode())
        digest.update(self.indices.astype(np.int64).tobytes())
        self.fingerprint = digest.hexdigest()
        self.location = f"{self.parent.location} (subset of {len(self.indices)})"

    def __len__(self) -> int:
        return len(self.indices)

    def open(self, index: int):
        return self.parent.open(int(self.indices[index]))

    def describe(self, index: int) -> str:
        return self.parent.describe(int(self.indices[index]))


def choose(total: int, limit: int, seed: int) -> np.ndarray:
    """`limit` distinct indices out of `total`, sorted, drawn with `seed`."""
    return np.sort(np.random.default_rng(seed).choice(total, size=min(limit, total), replace=False))


def subset(data, limit: int, seed: int):
    if not isinstance(data, (ClassificationData, RetrievalData)):
        raise ClipbenchError("--limit applies to classification and retrieval tasks, not to pair scoring", exit_code=2)
    keep = choose(len(data.images), limit, seed)
    images = SubsetImages(data.images, keep)
    if isinstance(data, ClassificationData):
        return replace(data, images=images, labels=data.labels[keep])
    assert isinstance(data, RetrievalData)
    new_index = {int(old): new for new, old in enumerate(keep)}
    chosen = [i for i, owner in enumerate(data.text_to_image) if int(owner) in new_index]
    positives = None
    if data.positives is not None:  # keep the pairs whose text and image both stay, renumbered
        new_text = {old: new for new, old in enumerate(chosen)}
        positives = np.array([(new_text[int(t)], new_index[int(i)]) for t, i in data.positives
                              if int(t) in new_text and int(i) in new_index], dtype=np.int64).reshape(-1, 2)
    return replace(
        data,
        images=images,
        texts=[data.texts[i] for i in chosen],
        text_to_image=np.array([new_index[int(data.text_to_image[i])] for i in chosen], dtype=np.int64),
        positives=positives,
    )
