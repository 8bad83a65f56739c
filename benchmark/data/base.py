"""What every reader returns (the data types the task kinds consume) and what a format module provides."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Optional, Protocol

import numpy as np
from PIL import Image
from pydantic import BaseModel

from ..custom_prompts import CustomPrompts
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
    custom_prompts: Optional[CustomPrompts] = None  # run --templates / --classnames: they replace the task's prompts
    origin: Optional[dict] = None  # the source read when it was not the task's folder: kind, repository, revision

    def take(self, keep: np.ndarray, images: ImageSource) -> "ClassificationData":
        """The images at the sorted indices `keep` (`images` serves them) and their labels (--limit)."""
        return replace(self, images=images, labels=self.labels[keep])


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
    origin: Optional[dict] = None  # the source read when it was not the task's folder: kind, repository, revision

    def take(self, keep: np.ndarray, images: ImageSource) -> "RetrievalData":
        """The images at the sorted indices `keep` (`images` serves them), the captions of those images, and the
        pairs whose text and image both stay, renumbered (--limit)."""
        new_index = {int(old): new for new, old in enumerate(keep)}
        chosen = [i for i, owner in enumerate(self.text_to_image) if int(owner) in new_index]
        positives = None
        if self.positives is not None:
            new_text = {old: new for new, old in enumerate(chosen)}
            positives = np.array([(new_text[int(t)], new_index[int(i)]) for t, i in self.positives
                                  if int(t) in new_text and int(i) in new_index], dtype=np.int64).reshape(-1, 2)
        return replace(
            self,
            images=images,
            texts=[self.texts[i] for i in chosen],
            text_to_image=np.array([new_index[int(self.text_to_image[i])] for i in chosen], dtype=np.int64),
            positives=positives,
        )


@dataclass
class PairData:
    """Image-text pairs to score (CFT-CLIP): validation rows (their labels unused) first, then test rows."""

    images: ImageSource  # validation rows first, then test rows
    texts: list[str]  # the text of each row, same order
    labels: np.ndarray  # (test rows,) 0/1
    n_validation: int
    text_field: str


@dataclass(frozen=True)
class Format:
    options: type[BaseModel]
    load: Callable[[TaskSpec, BaseModel, str, Path], "ClassificationData | RetrievalData | PairData"]  # (spec, options, language, data root)
    kinds: tuple[str, ...]  # the task kinds whose data this format holds; a task file of another kind is refused


def resolve_path(path: str, data_root: Path) -> Path:
    """A dataset path from a task file: absolute, or relative to the data root (--data-root)."""
    candidate = Path(path).expanduser()
    return candidate if candidate.is_absolute() else Path(data_root).expanduser() / candidate
