"""The `shapes` format: images drawn at run time by benchmark.data.shapes, nothing downloaded."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from ..specs import TaskSpec
from . import shapes
from .base import ClassificationData, Format, InMemoryImages, RetrievalData


class Options(BaseModel):
    model_config = ConfigDict(extra="forbid")
    size: int = Field(gt=0)
    seed: int


@functools.cache
def _classification(size: int, seed: int):
    samples = shapes.classification_samples(size, seed)
    images = InMemoryImages([img for img, _ in samples], location=f"shapes(size={size}, seed={seed})")
    return images, np.array([label for _, label in samples], dtype=np.int64)


@functools.cache
def _captions(size: int, seed: int):
    samples = shapes.caption_samples(size, seed)
    images = InMemoryImages([img for img, _ in samples], location=f"shapes-captions(size={size}, seed={seed})")
    return images, [captions for _, captions in samples]


def load(spec: TaskSpec, options: Options, language: str, data_root: Path):  # drawn here: no files
    if spec.kind == "classification":
        images, labels = _classification(options.size, options.seed)
        return ClassificationData(images=images, labels=labels, num_classes=len(shapes.CLASS_KEYS))
    images, captions = _captions(options.size, options.seed)
    texts, owners = [], []
    for index, by_language in enumerate(captions):
        for text in by_language[language]:
            texts.append(text)
            owners.append(index)
    return RetrievalData(images=images, texts=texts, text_to_image=np.array(owners, dtype=np.int64))


FORMAT = Format(options=Options, load=load, kinds=("classification", "retrieval"))
