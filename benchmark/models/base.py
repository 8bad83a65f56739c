"""The Encoder contract every backend fulfils, and what they share."""

from __future__ import annotations

import contextlib
import copy
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

    interpolation = "model"  # the resize of squashed images: the weights' own, or "bicubic" (see `transform`)
    # torch.inference_mode for a model loaded to be evaluated; a module of a training process (benchmark.api) runs
    # under torch.no_grad instead: a tensor it caches during an inference-mode forward could not be used by
    # autograd afterwards ("Inference tensors cannot be saved for backward").
    inference_mode = True

    def __init__(self, name: str, preprocess: Callable, device: torch.device, precision: str, info: dict):
        self.name = name
        self.preprocess = preprocess
        self.device = device
        self.precision = precision
        self.info = info

    def configured(self, precision: str | None = None, interpolation: str | None = None) -> "Encoder":
        """This encoder (the same loaded weights) running at `precision` and resizing squashed images with
        `interpolation`, as one job's protocol asks; itself when nothing changes."""
        changes = {key: value for key, value in (("precision", precision), ("interpolation", interpolation))
                   if value is not None and value != getattr(self, key)}
        if not changes:
            return self
        other = copy.copy(self)
        for key, value in changes.items():
            setattr(other, key, value)
        return other

    def _images(self, pixels: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _texts(self, texts: list[str]) -> torch.Tensor:
        raise NotImplementedError

    def autocast(self):
        if self.precision == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=PRECISIONS[self.precision])

    def no_grad(self):
        return torch.inference_mode() if self.inference_mode else torch.no_grad()

    def encode_images(self, pixels: torch.Tensor) -> torch.Tensor:
        with self.no_grad():
            with self.autocast():
                features = self._images(pixels.to(self.device, non_blocking=True))
            return F.normalize(features.float(), dim=-1)

    def encode_texts(self, texts: list[str], normalise: bool = True) -> torch.Tensor:
        """normalise=False gives the raw features, which a protocol averaging raw template embeddings needs."""
        with self.no_grad():
            with self.autocast():
                features = self._texts(list(texts))
            return F.normalize(features.float(), dim=-1) if normalise else features.float()

    def transform(self, center_crop: bool = True) -> Callable:
        """The weights' preprocessing; with center_crop=False the image is squashed to the input size
        instead of resized on its short side and centre-cropped (ELEVATER's KITTI-Distance, Chinese-CLIP).
        With `interpolation` "bicubic", a squashed image goes through Chinese-CLIP's transform instead, built
        here the same way for every backend (`square_transform`)."""
        if self.interpolation == "model":
            return self._own_transform(center_crop)
        if center_crop:
            raise ClipbenchError(f"{self.name}: interpolation '{self.interpolation}' applies to squashed images only "
                                 "(a protocol's preprocessing = \"square\")")
        (height, width), mean, std = self.input_geometry()
        return square_transform((height, width), mean, std, self.interpolation)

    def _own_transform(self, center_crop: bool) -> Callable:
        """The backend's own preprocessing, centre-cropped or squashed."""
        if center_crop:
            return self.preprocess
        raise ClipbenchError(f"{self.name}: this backend cannot turn off centre-cropping")

    def input_geometry(self) -> tuple[tuple[int, int], tuple[float, ...], tuple[float, ...]]:
        """((height, width), mean, std) of the weights' preprocessing."""
        raise ClipbenchError(f"{self.name}: this backend does not say its input size and normalisation, so no "
                             "protocol can build its own transform for it; use a protocol with interpolation 'model'")

    def describe_transform(self, center_crop: bool = True) -> str:
        """What `transform(center_crop)` does, in words that hold from one run to the next (the disk cache's
        key): torchvision's description of its steps and their settings."""
        return repr(self.transform(center_crop))


class ToRGB:
    """PIL image -> RGB (a class, not a function, so that its repr, part of the image cache key, is stable)."""

    def __call__(self, image):
        return image.convert("RGB")

    def __repr__(self) -> str:
        return "ToRGB()"


def square_transform(size: tuple[int, int], mean, std, interpolation: str = "bicubic") -> Callable:
    """Chinese-CLIP's image_transform (OFA-Sys/Chinese-CLIP @ 31863c707501bf1605d36842f43deb78793dbc5d,
    cn_clip/clip/utils.py; the same steps in cn_clip/eval/data.py EvalImgDataset._build_transform): resize to
    (resolution, resolution) with BICUBIC interpolation whatever the model, then convert to RGB, ToTensor,
    Normalize. Upstream normalises with OpenAI's mean and std, which are its weights' own; here the weights' own
    mean and std are used, so that the transform equals upstream's for Chinese-CLIP weights and stays right for
    others. (At 042050a, 2022-09, it converted to RGB first and resized with the default, bilinear, interpolation:
    changed in 62b0272, 2022-11-08, before the zero-shot scripts of 2022-11-22.)"""
    from torchvision.transforms import Compose, InterpolationMode, Normalize, Resize, ToTensor

    if interpolation != "bicubic":
        raise ValueError(f"unknown interpolation '{interpolation}'")
    return Compose([Resize(tuple(size), interpolation=InterpolationMode.BICUBIC), ToRGB(), ToTensor(),
                    Normalize(tuple(mean), tuple(std))])


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
