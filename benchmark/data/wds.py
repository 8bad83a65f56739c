"""CLIP_benchmark's webdataset layout, read from a local directory.

    DIR/{split}/nshards.txt, DIR/{split}/0.tar ... (uncompressed tar shards)
    DIR/classnames.txt, DIR/zeroshot_classification_templates.txt ({c} placeholder), DIR/dataset_type.txt
Samples are grouped webdataset-style by key (the member name up to the first dot of its base name):
an image (webp|png|jpg|jpeg, first found in that order) plus `cls` (int), `npy` (multi-label) or `txt`
(captions, one per line). The shards are indexed once (names, offsets, sizes); images are read by seeking,
so DataLoader workers can share the work in a fixed order.

Languages: the plain class-name and template files are in the directory's language (`language.txt`,
default `en`); `classnames_XX.txt` / `zeroshot_classification_templates_XX.txt` add language XX.

Counts: CLIP_benchmark's layout (its webdataset_builder.py, and the clip-benchmark/wds_* hub datasets made
with it) declares only the number of shards, `nshards.txt`; no per-shard or total sample count is written.
We check that number (1 or more, every shard present, no `<nshards>.tar` beyond it), that every shard ends
with the tar end-of-archive blocks (a shard cut at a member boundary otherwise reads as a smaller one), and,
when the split folder has open_clip's `sizes.json` ({"0.tar": count, ...}), each shard's sample count.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import ClipbenchError
from ..prompts import Prompts, check
from ..specs import Location, TaskSpec
from ..text import check_name, decode, read_text
from .base import ClassificationData, Format, RetrievalData, resolve_path

IMAGE_EXTENSIONS = ("webp", "png", "jpg", "jpeg")
LABEL_EXTENSIONS = ("cls", "npy", "txt")
END_OF_ARCHIVE = 1024  # two zero blocks close every tar; tarfile reads a file without them as a shorter one


class Options(Location):
    """The shared source fields only: the rest is in the directory itself (see the module note)."""


@dataclass
class TarImages:
    """Images stored as members of tar shards, read by offset."""

    entries: list[tuple[str, int, int, str]]  # (shard path, data offset, size, key)
    location: str
    fingerprint: str

    def __len__(self) -> int:
        return len(self.entries)

    def open(self, index: int) -> Image.Image:
        shard, offset, size, _ = self.entries[index]
        with open(shard, "rb") as handle:
            handle.seek(offset)
            data = handle.read(size)
        image = Image.open(io.BytesIO(data))
        image.load()
        return image

    def describe(self, index: int) -> str:
        shard, _, _, key = self.entries[index]
        return f"{shard}: sample '{key}'"


def lines(path: Path) -> list[str]:
    return [line.strip() for line in read_text(path).splitlines() if line.strip()]


def dataset_type(root: Path) -> str:
    path = root / "dataset_type.txt"
    return read_text(path).strip().lower() if path.is_file() else "classification"


def directory_language(root: Path) -> str:
    path = root / "language.txt"
    return read_text(path).strip().lower() if path.is_file() else "en"


def directory_languages(root: Path) -> list[str]:
    languages = [directory_language(root)]
    for path in sorted(root.glob("classnames_*.txt")):
        code = path.stem.split("_", 1)[1]
        if code not in languages:
            languages.append(code)
    return languages


def _check_root(root: Path, split: str) -> list[Path]:
    if not root.is_dir():
        raise ClipbenchError(
            f"dataset directory {root} does not exist; pass a directory in CLIP_benchmark's webdataset layout "
            f"({split}/nshards.txt, {split}/0.tar, classnames.txt, zeroshot_classification_templates.txt)"
        )
    nshards_file = root / split / "nshards.txt"
    if not nshards_file.is_file():
        found = sorted(p.name for p in root.iterdir() if p.is_dir())
        raise ClipbenchError(
            f"{nshards_file} is missing: {root} is not in CLIP_benchmark's webdataset layout for split '{split}' "
            f"(expected {split}/nshards.txt and {split}/0.tar ...; split folders found: {found or 'none'})"
        )
    text = read_text(nshards_file).strip()
    if not re.fullmatch(r"[0-9]+", text) or int(text) < 1:
        raise ClipbenchError(f"{nshards_file} holds {text[:20]!r}, not a number of shards (1 or more); "
                             "re-download it, or write the number of <n>.tar files there")
    count = int(text)
    folder = root / split
    present = {int(p.stem) for p in folder.glob("*.tar") if p.stem.isdigit() and p.stem == str(int(p.stem)) and p.is_file()}
    missing = count - len({i for i in present if i < count})
    if missing:
        first = next(i for i in range(count) if i not in present)
        raise ClipbenchError(f"{root}: {missing} of {count} shards named in nshards.txt are missing, e.g. {folder / f'{first}.tar'}; "
                             "re-download them")
    if count in present:  # read as declared, the samples of the shards beyond would silently drop out
        raise ClipbenchError(f"{nshards_file} says {count} shards but {folder / f'{count}.tar'} exists too; re-download the "
                             "dataset, or remove the shards it does not list")
    return [folder / f"{i}.tar" for i in range(count)]


def _split_key(name: str) -> tuple[str, str]:
    folder, _, base = name.rpartition("/")
    stem, _, ext = base.partition(".")
    return (f"{folder}/{stem}" if folder else stem), ext.lower()


def _members(shard: Path, archive: tarfile.TarFile):
    """The shard's members, then a check that the end-of-archive blocks follow the last one: tarfile stops
    without a word at a missing end or an unreadable header, which would make a cut shard a smaller one."""
    name = None
    try:
        for member in archive:
            name = member.name
            yield member
    except tarfile.ReadError:
        raise ClipbenchError(f"{shard} is truncated: it breaks off in or just after member '{name}'; re-download it") from None
    archive.fileobj.seek(archive.offset)
    end = archive.fileobj.read(END_OF_ARCHIVE)
    if len(end) < END_OF_ARCHIVE or end.count(0) != END_OF_ARCHIVE:
        where = f"after member '{name}'" if name is not None else "at its start"
        raise ClipbenchError(f"{shard} is truncated or damaged: no tar end-of-archive blocks {where}, "
                             "so samples may be missing; re-download it")


def _declared_sizes(folder: Path) -> dict | None:
    """open_clip's `sizes.json` ({shard file name: sample count}) when the folder has one."""
    path = folder / "sizes.json"
    if not path.is_file():
        return None
    try:
        sizes = json.loads(read_text(path))
        return {str(name): int(count) for name, count in sizes.items()}
    except (ValueError, TypeError, AttributeError):
        raise ClipbenchError(f"{path} is not a JSON object of shard name -> sample count; fix or remove it") from None


def _read_shard(shard: Path, metadata: tuple[str, ...]) -> list[dict]:
    by_key: dict[str, dict] = {}
    try:
        if shard.stat().st_size == 0:
            raise ClipbenchError(f"{shard} is empty (0 bytes); re-download it")
        archive = tarfile.open(shard, mode="r:")
    except tarfile.ReadError as exc:
        raise ClipbenchError(f"{shard} is not a readable uncompressed tar shard ({exc}); re-download it") from None
    except OSError as exc:
        raise ClipbenchError(f"{shard} cannot be read ({exc.strerror}); check that it is a readable file") from None
    with archive:
        for member in _members(shard, archive):
            if not member.isfile():
                continue
            key, ext = _split_key(member.name)
            check_name(key, str(shard))
            sample = by_key.setdefault(key, {"__key__": key, "__shard__": shard})
            if ext in IMAGE_EXTENSIONS:
                sample.setdefault("images", {})[ext] = (str(shard), member.offset_data, member.size)
            elif ext in metadata:
                try:
                    sample[ext] = archive.extractfile(member).read()
                except tarfile.ReadError:
                    raise ClipbenchError(f"{shard} is truncated: it breaks off in member '{member.name}'; re-download it") from None
    if not by_key:
        raise ClipbenchError(f"{shard} holds no samples (an empty tar); re-download it")
    return list(by_key.values())


def scan(shards: list[Path], metadata: tuple[str, ...] = LABEL_EXTENSIONS):
    """Index every sample: its shard, image locations and the raw bytes of its `metadata` members, in shard order."""
    samples: list[dict] = []
    declared: dict[Path, dict | None] = {}
    for shard in shards:
        found = _read_shard(shard, metadata)
        if shard.parent not in declared:
            declared[shard.parent] = _declared_sizes(shard.parent)
        sizes = declared[shard.parent]
        if sizes is not None and sizes.get(shard.name) != len(found):
            said = f"says {sizes[shard.name]}" if shard.name in sizes else "gives no count"
            raise ClipbenchError(f"{shard} holds {len(found)} samples but {shard.parent / 'sizes.json'} {said} for it; "
                                 "re-download the shard (or fix sizes.json)")
        samples.extend(found)
    return samples


def _fingerprint(samples: list[dict], entries: list[tuple]) -> str:
    digest = hashlib.sha256()
    for sample, (shard, _, size, key) in zip(samples, entries):
        digest.update(f"{Path(shard).name}|{key}|{size}|".encode())
        for ext in LABEL_EXTENSIONS:
            if ext in sample:
                digest.update(sample[ext])
    return digest.hexdigest()


def _prompts(root: Path, language: str, num_classes: int | None) -> Prompts:
    suffix = "" if language == directory_language(root) else f"_{language}"
    names, templates = root / f"classnames{suffix}.txt", root / f"zeroshot_classification_templates{suffix}.txt"
    if not names.is_file():
        raise ClipbenchError(f"{names} is missing: a classification directory needs one class name per line (language {language})")
    if not templates.is_file():
        templates = root / "zeroshot_classification_templates.txt"
        if not templates.is_file():
            raise ClipbenchError(f"{templates} is missing: add the zero-shot templates, one per line, with {{c}} for the class name")
    prompts = Prompts(lines(names), lines(templates), str(names))
    return check(prompts, num_classes, str(root))


def _where(sample: dict) -> str:
    return f"{sample['__shard__']}: sample '{sample['__key__']}'"


def _multilabels(samples: list[dict], num_classes: int) -> np.ndarray:
    rows = []
    for sample in samples:
        if "npy" not in sample:
            raise ClipbenchError(f"{_where(sample)} has no 'npy' label vector; a multilabel dataset needs one")
        try:
            row = np.load(io.BytesIO(sample["npy"]), allow_pickle=False).reshape(-1)
            positive = (row > 0).astype(np.int64)
        except (EOFError, ValueError, TypeError, OSError) as exc:  # np.load of a zero-byte member raises EOFError
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise ClipbenchError(f"{_where(sample)} has an 'npy' label that is not a numeric array ({reason}); "
                                 "re-download the shard") from None
        if row.shape[0] != num_classes:
            raise ClipbenchError(f"{_where(sample)} has {row.shape[0]} labels but classnames has {num_classes} names")
        rows.append(positive)
    return np.stack(rows)


def load(spec: TaskSpec, options: Options, language: str, data_root: Path, num_classes: int | None = None):
    """The directory's data. `num_classes` given: its class names are checked elsewhere (a mirror of a task with
    its own prompts, benchmark.data.mirror), so no prompts are read and labels run over that many classes."""
    root = resolve_path(options.path, data_root)
    try:
        shards = _check_root(root, spec.split)
    except ClipbenchError as missing:
        if options.download and not root.is_dir():
            raise ClipbenchError(f"{missing}; get it from {options.download}") from None
        raise
    kind = dataset_type(root)
    if (kind == "retrieval") != (spec.kind == "retrieval"):  # else the kind would get data it cannot score
        said = f"says '{kind}'" if (root / "dataset_type.txt").is_file() else "is absent (so: classification)"
        raise ClipbenchError(f"{root / 'dataset_type.txt'} {said}, but task '{spec.name}' is {spec.kind}; the folder does "
                             f"not hold the data the task names: re-download it, or fix the task's 'kind'")
    samples = scan(shards)
    entries = []
    for sample in samples:
        images = sample.get("images", {})
        ext = next((e for e in IMAGE_EXTENSIONS if e in images), None)
        if ext is None:
            raise ClipbenchError(f"{_where(sample)} has no image ({'|'.join(IMAGE_EXTENSIONS)}); fix or remove it")
        entries.append((*images[ext], sample["__key__"]))
    location = f"{root}/{spec.split}"
    source_images = TarImages(entries, location, _fingerprint(samples, entries))

    if kind == "retrieval":
        texts, owners = [], []
        for index, sample in enumerate(samples):
            if "txt" not in sample:
                raise ClipbenchError(f"{_where(sample)} has no 'txt' captions; a retrieval dataset needs them")
            captions = [line.strip() for line in decode(sample["txt"], f"{_where(sample)} 'txt'").splitlines() if line.strip()]
            if not captions:  # an image no caption names could never be found: it would only lower i2t recall
                raise ClipbenchError(f"{_where(sample)} has only blank captions; fix or remove that sample")
            texts.extend(captions)
            owners.extend([index] * len(captions))
        return RetrievalData(images=source_images, texts=texts, text_to_image=np.array(owners, dtype=np.int64))

    prompts = _prompts(root, language, spec.num_classes) if num_classes is None else None
    count = len(prompts.classnames) if prompts is not None else num_classes
    if kind == "multilabel":
        return ClassificationData(images=source_images, labels=_multilabels(samples, count), num_classes=count, prompts=prompts)
    labels = []
    for sample in samples:
        if "cls" not in sample:
            raise ClipbenchError(f"{_where(sample)} has no 'cls' label; a classification dataset needs one")
        try:
            labels.append(int(sample["cls"].decode("ascii").strip()))
        except ValueError:  # UnicodeDecodeError included
            raise ClipbenchError(f"{_where(sample)} has a 'cls' that is not an integer; re-download the shard") from None
    labels_array = np.array(labels, dtype=np.int64)
    if labels_array.min() < 0 or labels_array.max() >= count:
        raise ClipbenchError(
            f"{root}: labels run from {labels_array.min()} to {labels_array.max()} but classnames has "
            f"{count} names; the class-name file does not match the data"
        )
    return ClassificationData(images=source_images, labels=labels_array, num_classes=count, prompts=prompts)


def describe_directory(root: Path, split: str) -> tuple[str, list[str]]:
    """(dataset type, languages) of a directory in CLIP_benchmark's layout; an error when it is not in it."""
    _check_root(root, split)
    kind = dataset_type(root)
    return kind, [directory_language(root)] if kind == "retrieval" else directory_languages(root)


FORMAT = Format(options=Options, load=load, kinds=("classification", "retrieval"))
