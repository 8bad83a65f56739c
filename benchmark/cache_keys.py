"""The keys of the embedding cache on disk (benchmark.cache): everything that changes the numbers of an entry.

- the weights: the checkpoint's sha256 (the encoders hash it when they load it), else the hub id and the resolved
  commit; for a model folder also the small files beside the weights (config, tokenizer, preprocessor), which
  change the numbers without changing the weights. Weights known by neither are not cached (None).
- the preprocessing: its full description (torchvision's, or a transformers processor's settings), crop or squash;
  a description that names an object by its memory address (a lambda) holds for one run only: not cached.
- the dataset's fingerprint and size (the data modules' fingerprint: for image files their paths and sizes, not
  their bytes, so an image rewritten in place with the same size is not noticed); for texts, the sha256 of the exact texts (and for a classifier the
  template-averaging rule and the class and template counts).
- the precision, the device type (and the GPU's name), the versions of torch, torchvision, open_clip, transformers,
  Pillow and tokenizers, and the batch size.

The batch size is in the key because it changes fp32 CPU embeddings bit for bit. Measured on the bundled
tiny-shapes model, the 400 `shapes` images (fp32, CPU, 2 threads): batches of 32, 100 or 400 give exactly the
rows of batches of 64, but a batch of one image takes another kernel path: batch size 1 differs in all 400 rows
(by up to 1.5e-7), batch size 7 in the one row of its last, single-image batch; texts likewise at batch size 1
(up to 1.0e-7). One thread or two gave identical rows, so the thread count is not in the key.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

FORMAT = "clipbench-embeddings-1"
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".npz", ".npy", ".msgpack", ".h5", ".onnx")
_versions: dict | None = None


def library_versions() -> dict:
    global _versions
    if _versions is None:
        import importlib.metadata as md

        _versions = {}
        for package in ("torch", "torchvision", "open_clip_torch", "transformers", "pillow", "tokenizers"):
            try:
                _versions[package] = md.version(package)
            except md.PackageNotFoundError:
                _versions[package] = None
    return _versions


def _side_files(folder: Path) -> str:
    """sha256 over the small files beside a model folder's weights (configs, tokenizer, preprocessor)."""
    digest = hashlib.sha256()
    for path in sorted(folder.iterdir()):
        if path.is_file() and not path.name.startswith(".") and path.suffix not in WEIGHT_SUFFIXES \
                and path.stat().st_size < 64 << 20:
            digest.update(path.name.encode() + b"\0" + hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def model_identity(info: dict) -> dict | None:
    """What identifies the weights an encoder runs, from its provenance (`Encoder.info`): the checkpoint's sha256
    (the encoders hash it when they load it), else the hub id and resolved commit; None when neither is known."""
    sha, revision = info.get("checkpoint_sha256"), info.get("revision")
    model_id = str(info.get("id") or "")
    folder_id = model_id.removeprefix("local-dir:")
    local = model_id.startswith("local-dir:") or os.path.isdir(os.path.expanduser(folder_id))
    if not sha and (local or not revision):
        return None
    pretrained = info.get("pretrained")
    identity = {"backend": info.get("backend"), "class": info.get("class"),
                "id": "<local folder>" if local and sha else model_id,
                "pretrained": None if pretrained and os.path.isfile(str(pretrained)) else pretrained,
                "revision": revision, "checkpoint_sha256": sha}
    if info.get("text_input"):  # how texts are tokenised, where it is not the backend's default (SigLIP)
        identity["text_input"] = info["text_input"]
    checkpoint = info.get("checkpoint")
    if checkpoint and (local or model_id.startswith("hf-hub:") or info.get("backend") == "transformers"):
        try:
            identity["side_files"] = _side_files(Path(checkpoint).parent)
        except OSError:
            return None
    return identity


def preprocessing_identity(description: str) -> str | None:
    """A preprocessing's description, unless it names an object by its memory address (a lambda, a bound
    method): such a description says nothing that holds in the next run."""
    return None if re.search(r" at 0x[0-9a-fA-F]+", description) else description


def _device(device: torch.device) -> str:
    if device.type == "cuda":
        import torch

        return f"cuda ({torch.cuda.get_device_name(device)})"
    return device.type


def image_key(model: dict, preprocessing: str, fingerprint: str, n_images: int, precision: str,
              device: torch.device, batch_size: int) -> dict:
    return {"kind": "images", "format": FORMAT, "model": model, "preprocessing": preprocessing,
            "dataset": {"fingerprint": fingerprint, "n_images": n_images}, "precision": precision,
            "device": _device(device), "batch_size": batch_size, "versions": library_versions()}


def text_key(kind: str, model: dict, texts: list[str], precision: str, device: torch.device, batch_size: int,
             **rule) -> dict:
    """`kind`: "texts" (one row per text) or "classifier" (one row per class; `rule` holds the averaging and
    the class and template counts)."""
    texts_sha = hashlib.sha256(json.dumps(texts, ensure_ascii=False).encode("utf-8")).hexdigest()
    return {"kind": kind, "format": FORMAT, "model": model, "texts": {"sha256": texts_sha, "n": len(texts)},
            **rule, "precision": precision, "device": _device(device), "batch_size": batch_size,
            "versions": library_versions()}


def canonical(key: dict) -> str:
    return json.dumps(key, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def digest_of(key: dict) -> str:
    return hashlib.sha256(canonical(key).encode("utf-8")).hexdigest()
