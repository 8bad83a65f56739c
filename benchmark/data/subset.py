"""`--limit N`: a seeded random subset of a dataset's images (and, for retrieval, their captions)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace

import numpy as np

from . import ClassificationData, RetrievalData


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
    keep = choose(len(data.images), limit, seed)
    images = SubsetImages(data.images, keep)
    if isinstance(data, ClassificationData):
        return replace(data, images=images, labels=data.labels[keep])
    assert isinstance(data, RetrievalData)
    new_index = {int(old): new for new, old in enumerate(keep)}
    chosen = [i for i, owner in enumerate(data.text_to_image) if int(owner) in new_index]
    return replace(
        data,
        images=images,
        texts=[data.texts[i] for i in chosen],
        text_to_image=np.array([new_index[int(data.text_to_image[i])] for i in chosen], dtype=np.int64),
    )
