"""`--limit N`: a seeded random subset of a dataset's images (and, for retrieval, their captions)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from ..errors import ClipbenchError


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
    """A seeded random `limit` images of `data` (the data type says what else follows them: labels, captions)."""
    if not hasattr(data, "take"):
        raise ClipbenchError("--limit applies to classification and retrieval tasks, not to pair scoring", exit_code=2)
    keep = choose(len(data.images), limit, seed)
    return data.take(keep, SubsetImages(data.images, keep))
