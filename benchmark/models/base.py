"""The Encoder contract every backend fulfils, and what they share."""

from __future__ import annotations

import contextlib
import hashlib
import re
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

from ..errors import ClipbenchError

PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


class Encoder:
    """A loaded model. Subclasses implement `_images` and `_texts` (raw features); the public methods
    add autocast, L2 normalisation and float32 output.

    `preprocess` maps a PIL image to a (C, H, W) tensor: the transform that belongs to the weights.
    `info` is provenance: backend, id, revision, checkpoint path and hash, parameter count.
    """

    def __init__(self, name: str, preprocess: Callable, device: torch.device, precision: str, info: dict):
        self.name = name
        self.preprocess = preprocess
        self.device = device
        self.precision = precision
        self.info = info

    def _images(self, pixels: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _texts(self, texts: list[str]) -> torch.Tensor:
        raise NotImplementedError

    def autocast(self):
        if self.precision == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=PRECISIONS[self.precision])

    @torch.inference_mode()
    def encode_images(self, pixels: torch.Tensor) -> torch.Tensor:
        with self.autocast():
            features = self._images(pixels.to(self.device, non_blocking=True))
        return F.normalize(features.float(), dim=-1)

    @torch.inference_mode()
    def encode_texts(self, texts: list[str], normalise: bool = True) -> torch.Tensor:
        """normalise=False gives the raw features, which a protocol averaging raw template embeddings needs."""
        with self.autocast():
            features = self._texts(list(texts))
        return F.normalize(features.float(), dim=-1) if normalise else features.float()

    def transform(self, center_crop: bool = True) -> Callable:
        """The weights' preprocessing; with center_crop=False the image is squashed to the input size
        instead of resized on its short side and centre-cropped (ELEVATER's KITTI-Distance)."""
        if center_crop:
            return self.preprocess
        raise ClipbenchError(f"{self.name}: this backend cannot turn off centre-cropping")

    def describe_transform(self, center_crop: bool = True) -> str:
        """What `transform(center_crop)` does, in words that hold from one run to the next (the disk cache's
        key): torchvision's description of its steps and their settings."""
        return repr(self.transform(center_crop))


def transform_id(transform: Callable) -> str:
    """Identifies a preprocessing, for caching image embeddings."""
    return hashlib.sha256(repr(transform).encode()).hexdigest()[:16]


def pick_device(requested: str) -> torch.device:
    """`auto`, `cpu`, `cuda` or `cuda:N`, checked against the GPUs torch sees (a bad one fails before any work)."""
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if requested == "cpu":
        return torch.device("cpu")
    match = re.fullmatch(r"cuda(?::(\d+))?", requested)
    if not match:
        raise ClipbenchError(f"unknown --device '{requested}'; use auto, cpu, cuda or cuda:N", exit_code=2)
    if not torch.cuda.is_available():
        raise ClipbenchError(f"--device {requested}: no CUDA device is available (torch sees no GPU); "
                             "use --device cpu or auto", exit_code=2)
    count = torch.cuda.device_count()
    if match.group(1) is not None and int(match.group(1)) >= count:
        present = "cuda:0" if count == 1 else f"cuda:0 to cuda:{count - 1}"
        raise ClipbenchError(f"--device {requested}: torch sees {count} CUDA device{'s' if count > 1 else ''} "
                             f"({present}); pick one of those, or use cuda or auto", exit_code=2)
    return torch.device(requested)


def check_precision(precision: str, device: torch.device) -> str:
    if precision not in PRECISIONS:
        raise ClipbenchError(f"unknown --precision '{precision}'; use fp32, bf16 or fp16", exit_code=2)
    if precision == "fp16" and device.type != "cuda":
        raise ClipbenchError("--precision fp16 needs a CUDA device; use bf16 or fp32 on the CPU", exit_code=2)
    return precision


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def count_parameters(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def offline_hint(what: str, exc: BaseException) -> ClipbenchError | None:
    """A clear one-line error when `exc` (or its cause) is a hub or network failure, else None."""
    seen = exc
    while seen is not None:
        name = type(seen).__name__
        text = str(seen)
        if (
            name in {"LocalEntryNotFoundError", "OfflineModeIsEnabled", "ConnectionError", "ConnectTimeout",
                     "HfHubHTTPError", "RepositoryNotFoundError", "GatedRepoError", "MaxRetryError"}
            or "offline mode" in text.lower()
            or "couldn't connect" in text.lower()
            or "cannot find the requested files in the local cache" in text.lower()
        ):
            return ClipbenchError(
                f"could not fetch {what} from the Hugging Face hub ({name}); run once with network access to fill "
                "the cache (or copy the files into $HF_HOME/hub), or pass a local directory/checkpoint path instead"
            )
        seen = seen.__cause__ or seen.__context__
    return None


def state_dict_mismatch(exc: BaseException, checkpoint: str, architecture: str) -> ClipbenchError | None:
    text = str(exc)
    if "state_dict" in text or "size mismatch" in text or "Missing key" in text or "Unexpected key" in text:
        detail = next((line.strip() for line in text.splitlines() if "size mismatch" in line or "Missing key" in line
                       or "Unexpected key" in line), text.splitlines()[0] if text else "")
        return ClipbenchError(
            f"checkpoint {checkpoint} does not fit architecture '{architecture}' ({detail[:160]}); "
            "pass the --model architecture this checkpoint was trained with"
        )
    return None
