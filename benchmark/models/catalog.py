"""The registered models, one spec each."""

from __future__ import annotations

import functools

from ..paths import weights_dir
from ..registry import Registry
from ..specs import ModelSpec


def specs() -> list[ModelSpec]:
    return [
        ModelSpec(
            name="tiny-shapes",
            backend="open_clip",
            id=f"local-dir:{weights_dir('tiny-shapes')}",
            languages=["en", "pt", "zh"],
            licence="MIT",
            notes="bundled: a tiny ViT trained by `python -m benchmark.train_tiny` on drawn shapes",
        ),
    ]


@functools.cache
def model_registry() -> Registry[ModelSpec]:
    registry: Registry[ModelSpec] = Registry("model")
    for spec in specs():
        registry.register(spec.name, spec, origin=__name__)
    return registry
