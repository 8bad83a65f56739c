"""Classification images in folders: the layout CAPIVARA and Chinese-CLIP evaluate ELEVATER and ImageNet from.

Single-label (torchvision ImageFolder layout):

    <path>/<split>/<class folder>/<image files>      (images may sit in subfolders of the class folder)

  Label order: the task's `classes` option, a list of folder names in label order or the name of a file
  (relative to <path>) holding one folder name per line. Without it: the folder names sorted, and when every
  folder name is an integer, sorted by number (so `2` comes before `10`; Chinese-CLIP's ELEVATER folders
  `000`..`100` and ImageNet's wnid folders sort the same either way).
  `class_subset = [i, j, ...]`: keep only images of classes i, j, ... (indices into that order) and give
  them labels 0, 1, ... in the listed order (Babel-ImageNet: 667 of ImageNet's 1,000 classes).

Multi-label (VOC 2007), ELEVATER's vision-datasets "iris" image-classification index, `labels = "test_ic.txt"`:

    <path>/<labels file>     one line per image: `<image> <label>,<label>,...` (zero-based indices)
    <image>                  `test.zip@JPEGImages/000001.jpg`: member of the uncompressed zip <path>/test.zip,
                             or, when that zip is absent, the file <path>/test/JPEGImages/000001.jpg (unzipped);
                             a plain relative path is read from under <path>.

  Labels are returned as an (N, num_classes) 0/1 matrix; num_classes comes from the task.

`center_crop` (default true) is not used here: it tells the preprocessing whether to centre-crop (ELEVATER's
KITTI-Distance squashes the whole image to the input size instead).
"""

from __future__ import annotations

import hashlib
import io
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

import numpy as np
from PIL import Image
from pydantic import field_validator, model_validator

from ..errors import ClipbenchError
from ..specs import Location, TaskSpec
from ..text import check_name, read_text
from .base import ClassificationData, Format, resolve_path

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif", ".tif", ".tiff", ".ppm", ".pgm"})
LAYOUT = "<path>/<split>/<class folder>/<image files>"


class Options(Location):
    classes: Optional[Union[list[str], str]] = None
    class_subset: Optional[list[int]] = None
    labels: Optional[str] = None
    center_crop: bool = True

    @field_validator("classes")
    @classmethod
    def _classes(cls, value):
        if isinstance(value, list):
            if len(value) < 2:
                raise ValueError("list at least two class folder names")
            if len(set(value)) != len(value):
                raise ValueError("a class folder is listed twice")
        return value

    @field_validator("class_subset")
    @classmethod
    def _subset(cls, value):
        if value is not None:
            if len(value) < 2:
                raise ValueError("list at least two class indices")
            if min(value) < 0:
                raise ValueError("class indices start at 0")
            if len(set(value)) != len(value):
                raise ValueError("a class index is listed twice")
        return value

    @model_validator(mode="after")
    def _exclusive(self):
        if self.labels is not None and (self.classes is not None or self.class_subset is not None):
            raise ValueError("a multi-label 'labels' file cannot be combined with 'classes' or 'class_subset'")
        return self


@dataclass
class FolderImages:
    """Image files, or members of uncompressed zips, under one root, in a fixed order."""

    root: str
    entries: list[tuple[str, Optional[str]]]  # (path relative to root, zip member or None)
    location: str
    fingerprint: str

    def __len__(self) -> int:
        return len(self.entries)

    def open(self, index: int) -> Image.Image:
        relative, member = self.entries[index]
        path = os.path.join(self.root, relative)
        if member is None:
            image = Image.open(path)
        else:
            image = Image.open(io.BytesIO(_zip(path).read(member)))
        image.load()
        return image

    def describe(self, index: int) -> str:
        relative, member = self.entries[index]
        return os.path.join(self.root, relative) + (f"@{member}" if member is not None else "")


_ZIPS: dict[tuple[int, str], zipfile.ZipFile] = {}


def _zip(path: str) -> zipfile.ZipFile:
    """One open handle per zip and per process (DataLoader workers must not share a file offset)."""
    key = (os.getpid(), path)
    if key not in _ZIPS:
        _ZIPS[key] = zipfile.ZipFile(path)
    return _ZIPS[key]


def _fingerprint(rows: list[tuple[str, int, str]]) -> str:
    """sha256 over (relative path, size in bytes, label) of every image, in order."""
    digest = hashlib.sha256()
    for relative, size, label in rows:
        digest.update(f"{relative}|{size}|{label}\n".encode("utf-8"))
    return digest.hexdigest()


def _fail(spec: TaskSpec, problem: str, fix: str) -> ClipbenchError:
    return ClipbenchError(f"task '{spec.name}': {problem}; {fix}")


def _get_it(options: Options) -> str:
    where = f"get it from {options.download} and put it there" if options.download else "put the dataset there"
    return f"{where}, pass --data-root, or set [dataset].path in the task file"


def _is_image(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in IMAGE_SUFFIXES and not name.startswith(".")


def default_order(folders: list[str]) -> list[str]:
    """Sorted folder names; by number when every name is an integer."""
    if all(name.isdigit() for name in folders):
        return sorted(folders, key=lambda name: (int(name), name))
    return sorted(folders)


def _class_order(spec: TaskSpec, options: Options, root: Path, folders: list[str]) -> list[str]:
    if options.classes is None:
        return default_order(folders)
    if isinstance(options.classes, list):
        return list(options.classes)
    listing = root / options.classes
    if not listing.is_file():
        raise _fail(spec, f"the class list {listing} (option 'classes') does not exist",
                    "add it, one class folder name per line in label order, or list the folders in the task file")
    order = [line.strip() for line in read_text(listing, f"task '{spec.name}': {listing}").splitlines() if line.strip()]
    if len(set(order)) != len(order):
        raise _fail(spec, f"{listing} lists a class folder twice", "list each class folder once, in label order")
    return order


def _images_under(spec: TaskSpec, folder: Path) -> list[tuple[str, int]]:
    """(path relative to the folder, size) of every image below it, sorted. Linked folders are followed (a
    dataset may be assembled from links), but each real folder is read once: a link back up the tree (a loop)
    or a second link to a folder adds nothing, so every image is counted once."""
    def unreadable(exc: OSError):  # os.walk would skip the folder without a word
        raise _fail(spec, f"folder {exc.filename} cannot be read ({exc.strerror})", "fix its permissions or remove it")

    found = []
    seen = {_identity(folder)}
    for directory, subdirs, files in os.walk(folder, followlinks=True, onerror=unreadable):
        kept = []
        for name in sorted(d for d in subdirs if not d.startswith(".")):
            identity = _identity(os.path.join(directory, name))
            if identity not in seen:
                seen.add(identity)
                kept.append(name)
        subdirs[:] = kept
        for name in sorted(files):
            if _is_image(name):
                full = os.path.join(directory, name)
                relative = os.path.relpath(full, folder)
                check_name(relative, f"task '{spec.name}': an image in {folder}")
                try:
                    found.append((relative, os.path.getsize(full)))
                except OSError as exc:  # a dangling link, or a file that cannot be read
                    raise _fail(spec, f"image {full} cannot be read ({exc.strerror})", "fix or remove it") from None
    return found


def _identity(path) -> tuple[int, int]:
    """(device, inode) of the folder a path leads to, links followed."""
    info = os.stat(path)
    return info.st_dev, info.st_ino


def _single_label(spec: TaskSpec, options: Options, data_root: Path) -> ClassificationData:
    root = resolve_path(options.path, data_root)
    split_dir = root / spec.split
    layout = f"expected {LAYOUT} with <path> = {root} and <split> = {spec.split}"
    if not root.is_dir():
        raise _fail(spec, f"dataset directory {root} does not exist ({layout})", _get_it(options))
    if not split_dir.is_dir():
        found = sorted(p.name for p in root.iterdir() if p.is_dir())
        raise _fail(spec, f"{split_dir} does not exist (folders there: {found or 'none'}; {layout})",
                    f"put the {spec.split} images in one folder per class under {split_dir}")
    folders = [p.name for p in split_dir.iterdir() if p.is_dir() and not p.name.startswith(".")]
    for name in folders:
        check_name(name, f"task '{spec.name}': class folder in {split_dir}")
    if not folders:
        raise _fail(spec, f"{split_dir} has no class folders ({layout})",
                    "move each class's images into a folder of its own")
    order = _class_order(spec, options, root, folders)
    stray = sorted(set(folders) - set(order))
    if stray:
        raise _fail(spec, f"class folder(s) {stray[:5]} in {split_dir} are not in the task's class list 'classes'",
                    "add them to 'classes' in label order, or remove those folders")
    missing = [name for name in order if name not in folders]
    if missing:
        raise _fail(spec, f"class folder(s) {missing[:5]} listed in 'classes' are missing from {split_dir}",
                    "add those folders with their images, or fix the class list")

    kept = list(range(len(order)))
    if options.class_subset is not None:
        if max(options.class_subset) >= len(order):
            raise _fail(spec, f"class_subset names class {max(options.class_subset)} but {split_dir} has "
                              f"{len(order)} class folders", "use the full dataset, with every class folder")
        kept = list(options.class_subset)
    if spec.num_classes is not None and len(kept) != spec.num_classes:
        what = "classes in class_subset" if options.class_subset is not None else f"class folders in {split_dir}"
        raise _fail(spec, f"{len(kept)} {what}, but the task has {spec.num_classes} classes",
                    "use the complete dataset (one folder per class, none missing or extra)")

    entries, rows, labels = [], [], []
    for label, full_index in enumerate(kept):
        folder = order[full_index]
        images = _images_under(spec, split_dir / folder)
        if not images:
            raise _fail(spec, f"class folder {split_dir / folder} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})",
                        "add its images or re-extract the dataset")
        for relative, size in images:
            rel = f"{spec.split}/{folder}/{relative}"
            entries.append((rel, None))
            rows.append((rel, size, str(label)))
            labels.append(label)
    source = FolderImages(str(root), entries, str(split_dir), _fingerprint(rows))
    return ClassificationData(images=source, labels=np.asarray(labels, dtype=np.int64), num_classes=len(kept))


def _locate(spec: TaskSpec, root: Path, image: str, where: str) -> tuple[str, Optional[str], int]:
    """(path relative to root, zip member or None, size) for one image named in the labels file."""
    if "@" in image:
        container, member = image.split("@", 1)
        zip_path = root / container
        if zip_path.is_file():
            try:
                info = _zip(str(zip_path)).getinfo(member)
            except KeyError:
                raise _fail(spec, f"{where}: {member} is not in {zip_path}", "re-download the zip or fix the line") from None
            except zipfile.BadZipFile:
                raise _fail(spec, f"{zip_path} is not a readable zip", "re-download it") from None
            return container, member, info.file_size
        unzipped = Path(container[:-4] if container.lower().endswith(".zip") else container) / member
        if (root / unzipped).is_file():
            return unzipped.as_posix(), None, (root / unzipped).stat().st_size
        raise _fail(spec, f"{where}: neither {zip_path} nor {root / unzipped} exists",
                    f"put {container} in {root}, or unzip it into {root / unzipped.parts[0]}")
    if not (root / image).is_file():
        raise _fail(spec, f"{where}: image {root / image} does not exist", "put the images next to the labels file")
    return image, None, (root / image).stat().st_size


def _multi_label(spec: TaskSpec, options: Options, data_root: Path) -> ClassificationData:
    root = resolve_path(options.path, data_root)
    index_file = root / options.labels
    layout = f"expected {index_file} with lines '<image> <label>,<label>,...' (ELEVATER's vision-datasets index)"
    if not root.is_dir():
        raise _fail(spec, f"dataset directory {root} does not exist ({layout})", _get_it(options))
    if not index_file.is_file():
        raise _fail(spec, f"labels file {index_file} does not exist ({layout})",
                    "copy the dataset's index file there or set [dataset].labels in the task file")
    if spec.num_classes is None:
        raise _fail(spec, "a multi-label dataset needs the class count", "add 'num_classes = N' to the task file")
    entries, rows, matrix = [], [], []
    for number, line in enumerate(read_text(index_file, f"task '{spec.name}': {index_file}").splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{index_file} line {number}"
        parts = line.strip().rsplit(None, 1)
        image, raw = (parts[0], parts[1]) if len(parts) == 2 else (parts[0], "")
        try:
            indices = sorted({int(x) for x in raw.split(",") if x.strip()})
        except ValueError:
            raise _fail(spec, f"{where}: '{raw}' is not a comma-separated list of class indices", layout) from None
        if indices and (indices[0] < 0 or indices[-1] >= spec.num_classes):
            raise _fail(spec, f"{where}: class index out of range 0..{spec.num_classes - 1}",
                        "check that the labels file belongs to this dataset")
        relative, member, size = _locate(spec, root, image, where)
        row = np.zeros(spec.num_classes, dtype=np.int64)
        row[indices] = 1
        entries.append((relative, member))
        rows.append((image, size, ",".join(map(str, indices))))
        matrix.append(row)
    if not entries:
        raise _fail(spec, f"{index_file} lists no images", layout)
    source = FolderImages(str(root), entries, str(index_file), _fingerprint(rows))
    return ClassificationData(images=source, labels=np.stack(matrix), num_classes=spec.num_classes)


def load(spec: TaskSpec, options: Options, language: str, data_root: Path) -> ClassificationData:
    return _multi_label(spec, options, data_root) if options.labels is not None else _single_label(spec, options, data_root)


FORMAT = Format(options=Options, load=load, kinds=("classification",))
