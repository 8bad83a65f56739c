"""The batched embedding loops: images through a DataLoader with workers, texts in batches across classes."""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
import time
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from .distributed import current, embed_split
from .cache import DEFAULT_CHUNK, DiskCache
from .cache_keys import image_key, model_identity, preprocessing_identity, text_key
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
    return tqdm(total=total, desc=desc, unit="img", disable=None if current().is_main else True, file=sys.stderr, leave=False)


def embed_images(encoder: Encoder, source, batch_size: int = 64, num_workers: int = 2, desc: str = "images",
                 transform=None, indices: range | None = None) -> torch.Tensor:
    """(N, D) float32, L2-normalised, in the source's order, on the CPU; with `indices`, the rows of those
    images only (len(indices), D), in that order. Under torchrun, each rank embeds its whole batches of the
    block and all receive every row (a collective: every rank calls it with the same block)."""
    block = range(len(source)) if indices is None else indices
    return embed_split(block, lambda mine: _embed_images(encoder, source, batch_size, num_workers, desc, transform, mine),
                       batch_size)


def _embed_images(encoder: Encoder, source, batch_size: int, num_workers: int, desc: str, transform,
                  indices: range) -> torch.Tensor:
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
    """(T, D) float32, L2-normalised unless normalise=False. Under torchrun, split as embed_images is."""
    def embed_block(rows: range) -> torch.Tensor:
        chunks = [encoder.encode_texts(texts[i:min(i + batch_size, rows.stop)], normalise).cpu()
                  for i in range(rows.start, rows.stop, batch_size)]
        return torch.cat(chunks) if chunks else torch.zeros(0, 0)
    return embed_split(range(len(texts)), embed_block, batch_size)


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


@dataclass
class Embedded:
    """Embeddings of one job and where they came from (recorded in its result)."""

    embeddings: torch.Tensor
    seconds: float = 0.0  # spent computing (or reading) them, where they were first made in this run
    reused: bool = False  # made earlier in this run, for another task or language
    from_disk: bool | None = None  # read whole from the disk cache; None when it is off (or cannot key them)
    embedded: int = 0  # rows this job computed itself (fewer than all when a killed run's chunks were resumed)


class EmbeddingCache:
    """Embeddings of one run with one encoder: images by dataset fingerprint and preprocessing, so that tasks and
    languages that share images embed them once; with `disk` (benchmark.cache's DiskCache, or under torchrun
    benchmark.cache_ranks' RankZeroCache, which has its interface), also image and text embeddings kept between
    runs, images filled in resumable chunks of `chunk_size`.

    `embed` has embed_images' signature: the one function that computes a block of rows (a data-parallel run
    passes one that splits each block across ranks). Blocks start at multiples of the batch size."""

    def __init__(self, disk: DiskCache | None = None, chunk_size: int = DEFAULT_CHUNK, embed: Callable = None):
        self._store: dict[tuple, Embedded] = {}
        self.disk = disk
        self.chunk_size = chunk_size
        self.embed = embed or embed_images
        self._unkeyed: set[str] = set()
        self._identities: dict[str, dict | None] = {}

    def _model(self, encoder: Encoder) -> dict | None:
        if encoder.name not in self._identities:
            self._identities[encoder.name] = model_identity(encoder.info)
        identity = self._identities[encoder.name]
        if identity is None:
            self._note(encoder.name, f"{encoder.name}: its weights cannot be identified (no checkpoint file to hash, "
                                     "no hub commit); its embeddings are not kept in the disk cache")
        return identity

    def _note(self, what: str, line: str) -> None:
        if what not in self._unkeyed:
            self._unkeyed.add(what)
            self.disk.warn(f"warning: {line}")

    def images(self, encoder: Encoder, source, batch_size: int, num_workers: int, center_crop: bool = True) -> Embedded:
        transform = encoder.transform(center_crop)
        memory_key = (encoder.name, transform_id(transform), source.fingerprint)
        if memory_key in self._store:
            first = self._store[memory_key]
            return Embedded(first.embeddings, first.seconds, True, first.from_disk, 0)
        start = time.perf_counter()

        def compute(block: range) -> torch.Tensor:
            desc = source.location if len(block) == len(source) else f"{source.location} [{block.start}:{block.stop}]"
            return self.embed(encoder, source, batch_size, num_workers, desc=desc, transform=transform, indices=block)

        key = self._image_key(encoder, source, batch_size, center_crop) if self.disk else None
        if key is None:
            found = Embedded(compute(range(len(source))), embedded=len(source))
        else:
            chunk = -(-max(1, self.chunk_size) // batch_size) * batch_size  # whole batches: rows as unchunked
            filled = self.disk.fill(key, len(source), compute, chunk, label=f"{encoder.name} · {source.location}")
            found = Embedded(filled.embeddings, from_disk=filled.hit, embedded=filled.computed)
        found.seconds = time.perf_counter() - start
        self._store[memory_key] = found
        return found

    def _image_key(self, encoder: Encoder, source, batch_size: int, center_crop: bool) -> dict | None:
        model = self._model(encoder)
        if model is None:
            return None
        preprocessing = preprocessing_identity(encoder.describe_transform(center_crop))
        if preprocessing is None:
            self._note(f"transform {encoder.name}", f"{encoder.name}: its preprocessing has no stable description "
                                                     "(it names a function by address); its image embeddings are not "
                                                     "kept in the disk cache")
            return None
        return image_key(model, preprocessing, source.fingerprint, len(source), encoder.precision, encoder.device,
                         batch_size)

    def get(self, encoder: Encoder, source, batch_size: int, num_workers: int,
            center_crop: bool = True) -> tuple[torch.Tensor, float, bool]:
        """(embeddings, seconds spent embedding, whether this run had made them already)."""
        found = self.images(encoder, source, batch_size, num_workers, center_crop)
        return found.embeddings, found.seconds, found.reused

    def _texts(self, encoder: Encoder, kind: str, texts: list[str], batch_size: int, compute, label: str,
               **rule) -> Embedded:
        model = self._model(encoder) if self.disk else None
        if model is None:
            return Embedded(compute(), embedded=len(texts))
        key = text_key(kind, model, texts, encoder.precision, encoder.device, batch_size, **rule)
        tensor, hit = self.disk.cached(key, compute, label=f"{encoder.name} · {label}")
        return Embedded(tensor, from_disk=hit, embedded=0 if hit else len(texts))

    def classifier(self, encoder: Encoder, prompts: Prompts, batch_size: int = 256,
                   averaging: str = "normalise-then-mean") -> Embedded:
        """build_classifier's (C, D) classifier, kept on disk by the exact texts and the averaging rule."""
        return self._texts(encoder, "classifier", prompts.texts(), batch_size,
                           lambda: build_classifier(encoder, prompts, batch_size, averaging),
                           f"{len(prompts.classnames)} classes x {len(prompts.templates)} templates from {prompts.origin}",
                           averaging=averaging, classes=len(prompts.classnames), templates=len(prompts.templates),
                           **({"per_class": [len(own) for own in prompts.per_class]} if prompts.per_class is not None else {}))

    def texts(self, encoder: Encoder, texts: list[str], batch_size: int = 256) -> Embedded:
        """embed_texts' (T, D) normalised embeddings, kept on disk by the exact texts."""
        first = (texts[0][:40] + ("…" if len(texts[0]) > 40 else "")) if texts else ""
        return self._texts(encoder, "texts", list(texts), batch_size, lambda: embed_texts(encoder, texts, batch_size),
                           f"{len(texts)} texts ({first!r}, …)", normalise=True)


ImageEmbeddingCache = EmbeddingCache  # its name before it kept text embeddings and a disk cache
