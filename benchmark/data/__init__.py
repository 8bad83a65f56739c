"""Datasets as the evaluators see them, and the registry of on-disk formats (one module per format)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from dataclasses import dataclass, field
from typing import Callable, Optional, Protocol

import numpy as np
from PIL import Image
from pydantic import BaseModel, ValidationError

from ..errors import ClipbenchError
from ..prompts import Prompts
from ..specs import HubSource, TaskSpec, describe_validation_error


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


def formats() -> dict[str, Format]:
    from . import cnclip, folder, karpathy, pairs, pracegover, synthetic, wds, wds_json

    return {"cnclip": cnclip.FORMAT, "folder": folder.FORMAT, "karpathy": karpathy.FORMAT, "pairs": pairs.FORMAT, "pracegover": pracegover.FORMAT,
            "shapes": synthetic.FORMAT, "wds": wds.FORMAT, "wds-json": wds_json.FORMAT}


def _options(spec: TaskSpec) -> tuple[Format, BaseModel]:
    known = formats()
    if spec.dataset.format not in known:
        raise ClipbenchError(
            f"{spec.source_file or spec.name}: field 'dataset.format': unknown format '{spec.dataset.format}' "
            f"(known: {', '.join(sorted(known))})"
        )
    fmt = known[spec.dataset.format]
    try:
        return fmt, fmt.options.model_validate(spec.dataset.options)
    except ValidationError as exc:
        message = describe_validation_error(spec.source_file or spec.name, exc)
        raise ClipbenchError(message.replace("field '", "field 'dataset.")) from None


def validate_dataset(spec: TaskSpec) -> None:
    _options(spec)


def source(spec: TaskSpec) -> HubSource | None:
    """Where the task's files are and where to get them; None for data drawn at run time (`shapes`)."""
    _, options = _options(spec)
    return options if isinstance(options, HubSource) else None


def load(spec: TaskSpec, language: str, data_root: Path):
    """The task's data in `language`; relative dataset paths are read under `data_root`."""
    fmt, options = _options(spec)
    data = fmt.load(spec, options, language, data_root)
    if len(data.images) == 0:
        raise ClipbenchError(f"task '{spec.name}': {data.images.location} holds no images; check the dataset")
    return data
