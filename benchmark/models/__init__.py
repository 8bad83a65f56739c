"""Model loading: a registered name, or an ad-hoc open_clip / transformers model."""

from __future__ import annotations

import torch

from ..errors import ClipbenchError
from ..specs import ModelSpec
from .base import Encoder
from .catalog import model_registry


def resolve(name: str, pretrained: str | None = None) -> ModelSpec:
    """`--model` (+ `--pretrained`) to a spec: a registered name, `hf:ID` (transformers), `hf-hub:ID` or
    `local-dir:PATH` (open_clip), or an open_clip architecture."""
    registry = model_registry()
    if name in registry:
        spec = registry.get(name)
        if pretrained:
            raise ClipbenchError(f"'{name}' is a registered model; --pretrained applies to open_clip architectures only", exit_code=2)
        return spec
    if name.startswith("hf:"):
        return ModelSpec(name=name, backend="transformers", id=name[3:])
    if name.startswith(("hf-hub:", "local-dir:")):
        return ModelSpec(name=name, backend="open_clip", id=name)
    import open_clip

    if name.replace("/", "-") in open_clip.list_models():
        if not pretrained:
            raise ClipbenchError(f"'{name}' is an open_clip architecture: add --pretrained TAG or a checkpoint path", exit_code=2)
        return ModelSpec(name=f"{name}:{pretrained}", backend="open_clip", id=name, pretrained=pretrained)
    raise ClipbenchError(registry.unknown_message(name) + " (Or an open_clip architecture with --pretrained, hf:ORG/NAME, hf-hub:ORG/NAME, local-dir:PATH.)", exit_code=2)


def load(spec: ModelSpec, device: torch.device, precision: str, trust_remote_code: bool = False) -> Encoder:
    if spec.backend == "open_clip":
        from . import openclip

        return openclip.load(spec.name, spec.id, spec.pretrained, device, precision, spec.revision)
    from . import hf

    return hf.load(spec.name, spec.id, device, precision, spec.revision, trust_remote_code, spec.context_length)
