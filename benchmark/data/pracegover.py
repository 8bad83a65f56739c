"""#PraCegoVer (Portuguese Instagram alt-text captions), as its authors distribute the 400k release.

    <path>/<annotations>   pracegover_400k.json: {"train": [...], "validation": [...], "test": [...]},
                           each record {"filename": ..., "caption": ..., ...}; a flat list of records with a
                           "split" field is read too
    <path>/<images>/<filename>   the images (default folder `images`)

The task's split goes through `split_names` (default {val = "validation"}) to the JSON's split key.
One Portuguese caption per image (stripped); records keep their file order. CAPIVARA evaluated on the
validation split (80,628 records in its datasets_size.json).
"""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path

import numpy as np

from ..errors import ClipbenchError
from ..specs import Location, TaskSpec
from ..text import read_text
from .base import Format, RetrievalData, resolve_path
from .files import file_images, layout_error


class Options(Location):
    annotations: str = "pracegover_400k.json"
    images: str = "images"
    split_names: dict[str, str] = {"val": "validation"}
    language: str = "pt"


@functools.lru_cache(maxsize=4)
def _split(annotations: str, mtime: float, split: str) -> tuple[tuple[tuple[str, str], ...], tuple[str, ...]]:
    """((filename, caption) of the split's records, in file order), every split name found."""
    data = json.loads(read_text(annotations))
    if isinstance(data, dict):
        records, splits = data.get(split, []), tuple(sorted(data))
    elif isinstance(data, list):
        records = [r for r in data if r.get("split") == split]
        splits = tuple(sorted({str(r.get("split")) for r in data}))
    else:
        raise ValueError("it is neither a dict of splits nor a list of records")
    # a caption that is not a string counts as blank (str(None) would make the caption "None")
    return tuple((str(r["filename"]), r["caption"].strip() if isinstance(r["caption"], str) else "") for r in records), splits


def load(spec: TaskSpec, options: Options, language: str, data_root: Path) -> RetrievalData:
    root = resolve_path(options.path, data_root)
    annotations = root / options.annotations
    expected = [options.annotations, f"{options.images}/"]
    if not annotations.is_file():
        raise layout_error(spec, root, options.annotations if root.is_dir() else str(root), expected, options.download)
    if not (root / options.images).is_dir():
        raise layout_error(spec, root, f"the image folder {options.images}/", expected, options.download)
    if language != options.language:
        raise ClipbenchError(f"task '{spec.name}': #PraCegoVer has {options.language} captions only, not {language}; drop that language")
    key = options.split_names.get(spec.split, spec.split)
    try:
        rows, splits = _split(str(annotations), annotations.stat().st_mtime, key)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ClipbenchError(f"task '{spec.name}': {annotations} is not a #PraCegoVer annotation file ({exc}); re-download it") from None
    if not rows:
        raise ClipbenchError(f"task '{spec.name}': {annotations} has no records in split '{key}' (splits there: {', '.join(splits)}); "
                             "set the task's split to one of them")
    blank = [filename for filename, caption in rows if not caption]
    if blank:  # an image no caption names could never be found: it would only lower i2t recall
        raise ClipbenchError(f"task '{spec.name}': {annotations} gives {len(blank)} '{key}' record(s) a blank caption, "
                             f"the first is {blank[0]}; fix the file (or re-download it)")
    relative = [os.path.join(options.images, filename) for filename, _ in rows]
    images = file_images(spec, root, relative, f"{root / options.images} ({key})", str(annotations))
    return RetrievalData(images=images, texts=[caption for _, caption in rows],
                         text_to_image=np.arange(len(rows), dtype=np.int64))


FORMAT = Format(options=Options, load=load, kinds=("retrieval",))
