"""What every reader returns (the data types the task kinds consume) and what a format module provides."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Protocol

import numpy as np
from PIL import Image
from pydantic import BaseModel

from ..prompts import Prompts
from ..specs import TaskSpec


class ImageSource(Protocol):
    """A fixed, ordered list of images. `open(i)` may raise; the loader turns that into a clear error."""

    location: str
    fingerprint: str

    def __len__(self) -> int: ...

    def open(self, index: int) -> Image.Image: ...

    def describe(self, index: int) -> str: ...


@dataclass
class InMemoryImages:
    """Images generated at run time; the fingerprint hashes their pixels."""

    images: list[Image.Image]
    location: str
    fingerprint: str = ""

    def __post_init__(self):
        if not self.fingerprint:
            digest = hashlib.sha256()
            for image in self.images:
                digest.update(np.asarray(image.convert("RGB")).tobytes())
            self.fingerprint = digest.hexdigest()

    def __len__(self) -> int:
        return len(self.images)

    def open(self, index: int) -> Image.Image:
        return self.images[index]

    def describe(self, index: int) -> str:
        return f"{self.location} image {index}"


@dataclass
class ClassificationData:
    images: ImageSource
    labels: np.ndarray  # (N,) class indices
    num_classes: int
    prompts: Optional[Prompts] = None  # when the dataset brings its own class names and templates


@dataclass
class RetrievalData:
    images: ImageSource
    texts: list[str]
    text_to_image: np.ndarray  # (T,) index of each caption's image
    extra: dict = field(default_factory=dict)
    # (P, 2) int64 (text index, image index) pairs: the whole text-image relation, set only where it is more
    # than text_to_image (a text with several images, or an image no text names; Chinese-CLIP's layout allows both).
    # Then t2i counts a text as found when any of its images ranks in the top K, and i2t averages over the
    # images some text names. None: text_to_image is the whole relation.
    positives: Optional[np.ndarray] = None


@dataclass(frozen=True)
class Format:
    options: type[BaseModel]
    load: Callable[[TaskSpec, BaseModel, str, Path], "ClassificationData | RetrievalData"]  # (spec, options, language, data root)


def resolve_path(path: str, data_root: Path) -> Path:
    """A dataset path from a task file: absolute, or relative to the data root (--data-root)."""
    candidate = Path(path).expanduser()
    return candidate if candidate.is_absolute() else Path(data_root).expanduser() / candidate
