"""What is wrong with a weights file that failed to load: empty, truncated or corrupt, a pickle that holds
Python objects, or no weights at all. Run only after a load failed, so a good file is never read twice."""

from __future__ import annotations

import pickle
import pickletools
import re
import warnings
from pathlib import Path

from ..errors import ClipbenchError

REDO = "re-download or re-save it"
CONVERT = ("where you trust its source, load it once yourself and save its state_dict with safetensors' "
           "save_file (or torch.save(state_dict)), then pass that file")


def weights_problem(path: str | Path | None) -> ClipbenchError | None:
    """A one-line error naming `path` and the fix, or None when the file itself looks sound."""
    if not path or not Path(path).is_file():
        return None
    path = Path(path)
    if path.stat().st_size == 0:
        return ClipbenchError(f"checkpoint {path} is empty (0 bytes): a download or save was cut short; {REDO}")
    if path.suffix == ".safetensors":
        return _safetensors_problem(path)
    if path.suffix in (".npz", ".npy"):  # big_vision weights: numpy's own errors are clear enough
        return None
    return _torch_problem(path)


def _safetensors_problem(path: Path) -> ClipbenchError | None:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:  # reads the header; checks it covers the file
            empty = not list(handle.keys())
    except (SafetensorError, OSError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return ClipbenchError(f"checkpoint {path} is not a complete safetensors file ({reason}): it is truncated "
                              f"or corrupt; {REDO}")
    if empty:
        return ClipbenchError(f"checkpoint {path} holds no tensors; {REDO}")
    return None


def _torch_problem(path: Path) -> ClipbenchError | None:
    import torch

    try:  # weights_only: the file's pickle may name functions or classes, none of which is ever called
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's notes on pickle protocols: the error says what matters
            loaded = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r"GLOBAL ([\w.]+)", str(exc))
        if found or _pickles_objects(path):
            what = f" ({found.group(1)})" if found else ""
            return ClipbenchError(f"checkpoint {path} is not a plain weights file: it holds pickled Python objects"
                                  f"{what} that clipbench will not run; {CONVERT}")
        return ClipbenchError(f"checkpoint {path} is not a PyTorch weights file (it is corrupt, or another format "
                              f"named .{path.suffix.lstrip('.')}); {REDO}")
    except Exception as exc:  # noqa: BLE001 - on garbage, torch's unpickler fails in many ways (EOF, Index, Key...)
        reason = (str(exc).splitlines()[0] if str(exc) else "").split(". ")[0]
        if not isinstance(exc, (RuntimeError, OSError, EOFError)):  # a KeyError's text is just the key
            reason = f"{type(exc).__name__}: {reason}" if reason else type(exc).__name__
        return ClipbenchError(f"checkpoint {path} is truncated or corrupt ({reason}); {REDO}")
    weights = loaded.get("state_dict", loaded) if isinstance(loaded, dict) else loaded
    if not isinstance(weights, dict) or not any(isinstance(v, torch.Tensor) for v in weights.values()):
        what = "an empty dict" if isinstance(weights, dict) and not weights else f"a {type(weights).__name__}"
        return ClipbenchError(f"checkpoint {path} holds {what}, not a state_dict of tensors; save the model's "
                              "state_dict (torch.save(model.state_dict()) or safetensors' save_file) and pass that file")
    return None


def _pickles_objects(path: Path) -> bool:
    """Whether the file is one whole pickle (it ends where the pickle stops) that imports names. pickletools
    only reads the opcodes; nothing is imported or called."""
    size, imports, last = path.stat().st_size, False, None
    try:
        with open(path, "rb") as handle:
            for op, _, position in pickletools.genops(handle):
                imports = imports or op.name in ("GLOBAL", "STACK_GLOBAL", "INST")
                last = (op.name, position)
    except Exception:  # noqa: BLE001 - not a readable pickle: then it is just corrupt
        return False
    return imports and last == ("STOP", size - 1)
