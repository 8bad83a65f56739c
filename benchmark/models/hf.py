"""transformers backend: CLIPModel-style models through get_image_features / get_text_features."""

from __future__ import annotations

import functools
import os

import torch

from ..errors import ClipbenchError
from . import siglip
from .base import Encoder, count_parameters, offline_hint, sha256_file
from .hub import cached_weights, commit_of
from .weights import weights_problem


def _pooled(output) -> torch.Tensor:
    """transformers v5 may return a model output from get_*_features; the projected features are its pooler_output."""
    if isinstance(output, torch.Tensor):
        return output
    pooled = getattr(output, "pooler_output", None)
    if pooled is None:
        raise ClipbenchError(f"the model returned {type(output).__name__} without pooled features; it is not CLIP-like")
    return pooled


class HFEncoder(Encoder):
    """`pad_to_length`: pad every text to exactly this many tokens and feed the text tower input_ids alone, no
    attention mask (SigLIP, see siglip.py), instead of padding to the longest of the batch and feeding all the
    tokenizer returns; `lowercase`: lowercase texts before tokenising (SigLIP 2's Gemma tokenizer)."""

    def __init__(self, name, model, processor, device, precision, info, context_length=None,
                 pad_to_length=None, lowercase=False):
        self.processor = processor
        self.context_length = pad_to_length or context_length or getattr(processor.tokenizer, "model_max_length", None)
        if self.context_length and self.context_length > 100_000:  # "no limit" sentinel
            self.context_length = None
        self.padding = "max_length" if pad_to_length else True
        self.ids_only = bool(pad_to_length)
        self.lowercase = lowercase
        super().__init__(name, self._preprocess, device, precision, info)
        self.model = model

    def _preprocess(self, image, **overrides):
        return self.processor.image_processor(images=image.convert("RGB"), return_tensors="pt", **overrides)["pixel_values"][0]

    def _crops(self) -> bool:
        return bool(getattr(self.processor.image_processor, "do_center_crop", False))

    def _own_transform(self, center_crop: bool):
        if center_crop or not self._crops():  # a processor without a crop (SigLIP) already squashes to its size
            return self.preprocess
        crop = self.processor.image_processor.crop_size
        return functools.partial(self._preprocess, do_center_crop=False, size={"height": crop["height"], "width": crop["width"]})

    def input_geometry(self):
        """The model's input size (the centre crop's, or the resize's where there is no crop), and the
        processor's mean and std."""
        processor = self.processor.image_processor
        size = getattr(processor, "crop_size", None) if getattr(processor, "do_center_crop", False) else None
        size = size or getattr(processor, "size", None) or {}
        if "height" not in size or "width" not in size:
            return super().input_geometry()
        return (size["height"], size["width"]), tuple(processor.image_mean), tuple(processor.image_std)

    def describe_transform(self, center_crop: bool = True) -> str:
        if self.preprocess != self._preprocess or self.interpolation != "model":  # not the processor's own: its steps
            return super().describe_transform(center_crop)
        processor = self.processor.image_processor
        return f"{type(processor).__name__} {processor.to_json_string()} center_crop={center_crop and self._crops()}"

    def _images(self, pixels: torch.Tensor) -> torch.Tensor:
        return _pooled(self.model.get_image_features(pixel_values=pixels))

    def _texts(self, texts: list[str]) -> torch.Tensor:
        if self.lowercase:
            texts = [text.lower() for text in texts]
        tokens = self.processor.tokenizer(
            texts, padding=self.padding, truncation=self.context_length is not None,
            max_length=self.context_length, return_tensors="pt",
        ).to(self.device)
        if self.ids_only:
            return _pooled(self.model.get_text_features(input_ids=tokens["input_ids"]))
        return _pooled(self.model.get_text_features(**tokens))



def _weights_file(model_id: str, revision: str | None) -> str | None:
    try:
        return cached_weights(model_id, revision)
    except Exception:  # noqa: BLE001 - only asked after a failed load, which is reported either way
        return None


def load(name: str, model_id: str, device: torch.device, precision: str, revision: str | None = None,
         trust_remote_code: bool = False, context_length: int | None = None) -> HFEncoder:
    from transformers import AutoConfig, AutoModel, AutoProcessor
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()

    if model_id.startswith((".", "/", "~")) and not os.path.isdir(os.path.expanduser(model_id)):
        raise ClipbenchError(f"model directory {model_id} does not exist; check the path", exit_code=2)
    model_id = os.path.expanduser(model_id)
    try:
        config = AutoConfig.from_pretrained(model_id, revision=revision, trust_remote_code=trust_remote_code)
        siglip.refuse_naflex(model_id, config)
        model = AutoModel.from_pretrained(model_id, revision=revision, trust_remote_code=trust_remote_code)
        processor = AutoProcessor.from_pretrained(model_id, revision=revision, trust_remote_code=trust_remote_code)
    except ClipbenchError:
        raise
    except Exception as exc:  # noqa: BLE001 - transformers and safetensors raise their own types
        problem = offline_hint(model_id, exc) or weights_problem(_weights_file(model_id, revision))
        if problem:
            raise problem from None
        if not isinstance(exc, (OSError, ValueError)):
            raise
        if "trust_remote_code" in str(exc):
            raise ClipbenchError(f"{model_id} needs its own code from the hub; re-run with --trust-remote-code if you trust it", exit_code=2) from None
        raise ClipbenchError(f"could not load {model_id} with transformers: {str(exc).splitlines()[0]}") from None
    if not hasattr(model, "get_image_features") or not hasattr(model, "get_text_features"):
        raise ClipbenchError(f"{model_id} ({type(model).__name__}) has no get_image_features/get_text_features; it is not a CLIP-style model", exit_code=2)
    model.to(device).eval()
    checkpoint = cached_weights(model_id, revision)
    info = {
        "backend": "transformers",
        "id": model_id,
        "revision": revision or commit_of(checkpoint) or getattr(model.config, "_commit_hash", None),
        "checkpoint": checkpoint,
        "checkpoint_sha256": sha256_file(checkpoint) if checkpoint else None,
        "parameters": count_parameters(model),
        "class": type(model).__name__,
    }
    return encoder(name, model, processor, device, precision, info, context_length)


def encoder(name: str, model, processor, device: torch.device, precision: str, info: dict,
            context_length: int | None = None) -> HFEncoder:
    """The encoder of a transformers model and its processor, loaded here or handed in (benchmark.api), with its
    family's text rules: SigLIP's texts padded to its positions, input_ids alone (see siglip.py)."""
    siglip.refuse_naflex(name, model.config)
    if siglip.is_siglip(model.config):
        length, lowercase = siglip.text_length(name, model.config, context_length), not siglip.preprocesses_itself(processor.tokenizer)
        # recorded in results, and part of the disk cache's key: these texts embed differently from padding=True
        info["text_input"] = {"padding": "max_length", "max_length": length, "truncation": True,
                              "attention_mask": False, "lowercase": lowercase}
        return HFEncoder(name, model, processor, device, precision, info, pad_to_length=length, lowercase=lowercase)
    return HFEncoder(name, model, processor, device, precision, info, context_length)
