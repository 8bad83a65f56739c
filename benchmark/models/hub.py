"""What the Hugging Face hub cache tells about a model without loading it: the commit a file came from,
and the parameter count from a safetensors header."""

from __future__ import annotations

import os
import re
from pathlib import Path

WEIGHT_FILES = ("open_clip_model.safetensors", "model.safetensors", "open_clip_pytorch_model.bin", "pytorch_model.bin")


def commit_of(path: str | None) -> str | None:
    """The commit hash in a hub-cache path (`.../snapshots/<commit>/file`), else None."""
    if not path:
        return None
    match = re.search(r"[\\/]snapshots[\\/]([0-9a-f]{40})[\\/]", str(path))
    return match.group(1) if match else None


def cached_weights(model_id: str, revision: str | None = None) -> str | None:
    """A local weights file for a hub id (`org/name`, `hf-hub:org/name`) or a local directory, if present."""
    from huggingface_hub import try_to_load_from_cache

    for prefix in ("hf-hub:", "local-dir:", "hf:"):
        if model_id.startswith(prefix):
            model_id = model_id[len(prefix):]
    if os.path.isdir(model_id):
        return next((str(Path(model_id) / n) for n in WEIGHT_FILES if (Path(model_id) / n).is_file()), None)
    if model_id.count("/") != 1:
        return None
    for name in WEIGHT_FILES:
        found = try_to_load_from_cache(model_id, name, revision=revision)
        if isinstance(found, str):
            return found
    return None


def count_parameters_in(path: str | None) -> int | None:
    """Number of parameters in a safetensors file, read from its header (no weights are loaded)."""
    if not path or not path.endswith(".safetensors"):
        return None
    from safetensors import safe_open

    total = 0
    with safe_open(path, framework="pt") as handle:
        for key in handle.keys():
            count = 1
            for dim in handle.get_slice(key).get_shape():
                count *= dim
            total += count
    return total
