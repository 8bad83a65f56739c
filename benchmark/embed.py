"""The batched embedding loops: images through a DataLoader with workers, texts in batches across classes."""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
import time

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from .errors import ClipbenchError
from .models.base import Encoder, transform_id
from .prompts import Prompts


class ImageDataset(Dataset):
    """Decodes and preprocesses one image; a failure travels back as a message instead of killing the worker."""

    def __init__(self, source, transform, indices: range | None = None):
        self.source = source
        self.transform = transform
        self.indices = range(len(source)) if indices is None else indices

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, position: int):
        index = self.indices[position]
        try:
            image = self.source.open(index)
            return self.transform(image.convert("RGB")), position, ""
        except Exception as exc:  # noqa: BLE001 - any decode failure is reported with the image's name
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            return None, position, f"{self.source.describe(index)} could not be read ({reason})"


def _collate(batch):
    errors = [error for _, _, error in batch if error]
    if errors:
        return None, None, errors
    pixels = torch.stack([pixels for pixels, _, _ in batch])
    return pixels, torch.tensor([index for _, index, _ in batch]), []


def _ignore_sigint(_worker_id: int) -> None:
    """In each DataLoader worker: leave Ctrl-C to the main process, which stops the workers; a worker that
    took it would print its own traceback. A Ctrl-C held while the worker started is dropped here."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


@contextlib.contextmanager
def _sigint_deferred():
    """While the workers start, a Ctrl-C is noted and raised once they all run, not inside DataLoader's
    set-up (which would leave it half made); the workers start with SIGINT blocked until they ignore it."""
    if not hasattr(signal, "pthread_sigmask") or threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    handler = signal.signal(signal.SIGINT, lambda signum, _frame: caught.append(signum))
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        signal.signal(signal.SIGINT, handler)
    if caught:
        raise KeyboardInterrupt


def _progress(total: int, desc: str):
    return tqdm(total=total, desc=desc, unit="img", disable=None, file=sys.stderr, leave=False)


def embed_images(encoder: Encoder, source, batch_size: int = 64, num_workers: int = 2, desc: str = "images",
                 transform=None, indices: range | None = None) -> torch.Tensor:
    """(N, D) float32, L2-normalised, in the source's order, on the CPU; with `indices`, the rows of those
    images only (len(indices), D), in that order."""
    dataset = ImageDataset(source, transform or encoder.preprocess, indices)
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        pin_memory=encoder.device.type == "cuda",
        collate_fn=_collate,
        persistent_workers=False,
        worker_init_fn=_ignore_sigint if num_workers > 0 and hasattr(signal, "pthread_sigmask") else None,
    )
    out: torch.Tensor | None = None
    with _sigint_deferred():
        batches = iter(loader)  # starts the workers
    with _progress(len(dataset), desc) as bar:
        for pixels, indices, errors in batches:
            if errors:
                more = f" (and {len(errors) - 1} more in that batch)" if len(errors) > 1 else ""
                raise ClipbenchError(f"{errors[0]}{more}; re-download or remove the corrupt image")
            features = encoder.encode_images(pixels).cpu()
            if out is None:
                out = torch.empty(len(dataset), features.shape[1], dtype=torch.float32)
            out[indices] = features
            bar.update(len(indices))
    if out is None:  # no image in `indices`: no width known
        return torch.zeros(0, 0)
    return out


def embed_texts(encoder: Encoder, texts: list[str], batch_size: int = 256, normalise: bool = True) -> torch.Tensor:
    """(T, D) float32, L2-normalised unless normalise=False."""
    chunks = [encoder.encode_texts(texts[i:i + batch_size], normalise).cpu() for i in range(0, len(texts), batch_size)]
    return torch.cat(chunks) if chunks else torch.zeros(0, 0)


def build_classifier(encoder: Encoder, prompts: Prompts, batch_size: int = 256,
                     averaging: str = "normalise-then-mean") -> torch.Tensor:
    """Zero-shot classifier (C, D): per class, the L2-normalised mean of its template embeddings, each
    L2-normalised first ("normalise-then-mean", CLIP_benchmark) or raw ("mean-then-normalise", CAPIVARA's
    ImageNet script). All (class, template) texts are encoded together in batches, many classes per pass."""
    if averaging not in ("normalise-then-mean", "mean-then-normalise"):
        raise ValueError(f"unknown template averaging '{averaging}'")
    texts = prompts.texts()
    embeddings = embed_texts(encoder, texts, batch_size, normalise=averaging == "normalise-then-mean")
    if prompts.per_class is not None:  # CuPL: each class averages its own prompts
        return average_per_class(embeddings, [len(own) for own in prompts.per_class])
    return average_templates(embeddings.view(len(prompts.classnames), len(prompts.templates), -1))


def average_templates(per_class: torch.Tensor) -> torch.Tensor:
    """(C, T, D) template embeddings -> (C, D) classifier: the normalised mean over templates."""
    return F.normalize(per_class.mean(dim=1), dim=-1)


def average_per_class(embeddings: torch.Tensor, counts: list[int]) -> torch.Tensor:
    """(sum(counts), D) prompt embeddings, class after class -> (C, D): each class's normalised mean over its own
    `counts[c]` prompts (a ragged `average_templates`)."""
    sizes = torch.tensor(counts, dtype=torch.long)
    owner = torch.repeat_interleave(torch.arange(len(counts)), sizes)
    sums = torch.zeros(len(counts), embeddings.shape[1], dtype=embeddings.dtype).index_add_(0, owner, embeddings)
    return F.normalize(sums / sizes[:, None].to(embeddings.dtype), dim=-1)


class ImageEmbeddingCache:
    """Image embeddings of one run, keyed by dataset fingerprint and preprocessing, so tasks and
    languages that share images embed them once."""

    def __init__(self):
        self._store: dict[tuple, tuple[torch.Tensor, float]] = {}

    def get(self, encoder: Encoder, source, batch_size: int, num_workers: int,
            center_crop: bool = True) -> tuple[torch.Tensor, float, bool]:
        """(embeddings, seconds spent embedding, whether they came from the cache)."""
        transform = encoder.transform(center_crop)
        key = (encoder.name, transform_id(transform), source.fingerprint)
        if key in self._store:
            embeddings, seconds = self._store[key]
            return embeddings, seconds, True
        start = time.perf_counter()
        embeddings = embed_images(encoder, source, batch_size, num_workers, desc=source.location, transform=transform)
        seconds = time.perf_counter() - start
        self._store[key] = (embeddings, seconds)
        return embeddings, seconds, False
