"""open_clip backend: `ARCH` + pretrained tag or checkpoint file, `hf-hub:org/name`, or `local-dir:PATH`."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import torch

from ..errors import ClipbenchError
from .base import Encoder, count_parameters, offline_hint, sha256_file, state_dict_mismatch
from .hub import commit_of
from .weights import weights_problem


class OpenClipEncoder(Encoder):
    def __init__(self, name, model, preprocess, tokenizer, device, precision, info):
        super().__init__(name, preprocess, device, precision, info)
        self.model = model
        self.tokenizer = tokenizer

    def _images(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.model.encode_image(pixels)

    def _own_transform(self, center_crop: bool):
        if center_crop:
            return self.preprocess
        from open_clip.transform import PreprocessCfg, image_transform_v2

        return image_transform_v2(PreprocessCfg(**{**self.model.visual.preprocess_cfg, "resize_mode": "squash"}), is_train=False)

    def input_geometry(self):
        cfg = self.model.visual.preprocess_cfg
        size = cfg["size"]
        return (tuple(size[-2:]) if isinstance(size, (tuple, list)) else (size, size)), tuple(cfg["mean"]), tuple(cfg["std"])

    def _texts(self, texts: list[str]) -> torch.Tensor:
        return self.model.encode_text(self.tokenizer(texts).to(self.device))


def checkpoint_path(model_id: str, pretrained: str | None) -> str | None:
    """The weights file open_clip will read, resolved the way open_clip resolves it (cache hits only)."""
    import open_clip
    from open_clip import factory

    if model_id.startswith("local-dir:"):
        found = factory._find_checkpoint_in_dir(Path(model_id[len("local-dir:"):]))
        return str(found) if found else None
    if model_id.startswith("hf-hub:"):
        return factory.download_pretrained_from_hf(model_id[len("hf-hub:"):])
    if pretrained and os.path.isfile(pretrained):
        return pretrained
    if pretrained:
        cfg = open_clip.get_pretrained_cfg(model_id, pretrained)
        return open_clip.download_pretrained(cfg) if cfg else None
    return None


def _checkpoint_or_none(model_id: str, pretrained: str | None) -> str | None:
    try:
        return checkpoint_path(model_id, pretrained)
    except Exception:  # noqa: BLE001 - only asked after a failed load, which is reported either way
        return None


def check_request(model_id: str, pretrained: str | None) -> None:
    import open_clip

    if model_id.startswith("local-dir:"):
        folder = Path(model_id[len("local-dir:"):])
        if not (folder / "open_clip_config.json").is_file():
            raise ClipbenchError(f"{folder} has no open_clip_config.json: 'local-dir:' needs open_clip's hub layout (config + weights)", exit_code=2)
        if not checkpoint_path(model_id, pretrained):  # open_clip would go on with random weights
            raise ClipbenchError(f"{folder} has no weights file (*.safetensors, *.bin or *.pth next to "
                                 "open_clip_config.json); add the checkpoint to that folder", exit_code=2)
        return
    if model_id.startswith("hf-hub:"):
        return
    if model_id.replace("/", "-") not in open_clip.list_models():
        raise ClipbenchError(f"'{model_id}' is neither a registered model nor an open_clip architecture; see 'clipbench list models'", exit_code=2)
    if pretrained and not os.path.isfile(pretrained) and not open_clip.get_pretrained_cfg(model_id, pretrained):
        if any(sep in pretrained for sep in ("/", "\\", ".pt", ".bin", ".safetensors")):
            raise ClipbenchError(f"checkpoint file {pretrained} does not exist; check the --pretrained path", exit_code=2)
        tags = [t for a, t in open_clip.list_pretrained() if a == model_id]
        raise ClipbenchError(f"'{pretrained}' is not an open_clip pretrained tag of {model_id} (known: {', '.join(tags) or 'none'}) nor a file", exit_code=2)


def load(name: str, model_id: str, pretrained: str | None, device: torch.device, precision: str,
         revision: str | None = None) -> OpenClipEncoder:
    import open_clip

    check_request(model_id, pretrained)
    try:
        with warnings.catch_warnings():
            # torch's note on a pickle protocol it does not expect; a file it cannot read is diagnosed below
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            model, _, preprocess = open_clip.create_model_and_transforms(model_id, pretrained=pretrained, device=device)
        tokenizer = open_clip.get_tokenizer(model_id)
        checkpoint = checkpoint_path(model_id, pretrained)
    except Exception as exc:  # noqa: BLE001 - each loader raises its own types; known causes become one line
        problem = (offline_hint(f"{model_id} {pretrained or ''}".strip(), exc)
                   or weights_problem(_checkpoint_or_none(model_id, pretrained))
                   or state_dict_mismatch(exc, str(pretrained or model_id), model_id))
        if problem:
            raise problem from None
        raise
    model.eval()
    resolved = commit_of(checkpoint)
    if revision and resolved and resolved != revision:
        raise ClipbenchError(
            f"{model_id}: the hub cache gave commit {resolved} but the spec pins {revision}; "
            f"fetch that revision (huggingface-cli download {model_id[len('hf-hub:'):]} --revision {revision}) and retry")
    info = {
        "backend": "open_clip",
        "id": model_id,
        "pretrained": pretrained,
        "revision": revision or resolved,
        "checkpoint": checkpoint,
        "checkpoint_sha256": sha256_file(checkpoint) if checkpoint and os.path.isfile(checkpoint) else None,
        "parameters": count_parameters(model),
    }
    return OpenClipEncoder(name, model, preprocess, tokenizer, device, precision, info)
