"""Karpathy's splits of Flickr30k and MS COCO, as distributed (https://cs.stanford.edu/people/karpathy/deepimagesent/).

    <path>/<annotations>                  dataset_flickr30k.json or dataset_coco.json:
                                          {"images": [{"filename", "filepath" (COCO only), "split", "sentences": [{"raw"}, ...]}]}
    <path>/<images>/[<filepath>/]<filename>   the images: flickr30k-images/1000092795.jpg; COCO (images = ""): val2014/COCO_val2014_....jpg
    <path>/<captions[lang]>               optional, one per extra language: JSONL lines {"image": <filename>, "captions": [...]}

The task's `split` picks the entries whose "split" equals it (test, val, train, restval), in file order.
The JSON's own captions (`sentences[].raw`, stripped) are in `language` (default en); another language comes
from its JSONL file, matched by file name (every image of the split must have a line).

Captions beyond five (COCO): a few COCO images carry 6 or 7 captions (the 5k test split has 25,010 captions,
not 25,000). We keep ALL of them, as CLIP_benchmark does: its `mscoco_captions` test annotation file
(mehdidc/retrieval_annotations, build_coco_splits.py) copies every COCO caption of the Karpathy test images,
and ALBEF/BLIP's coco_karpathy_test.json does the same. `max_captions = 5` keeps the first five per image
instead (the 25,000-caption variant of the SCAN/VSE++ precomputed features).
"""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path
from typing import Optional

import numpy as np
from pydantic import Field

from ..errors import ClipbenchError
from ..specs import Location, TaskSpec
from ..text import read_text
from .base import Format, RetrievalData, resolve_path
from .files import file_images, jsonl_records, layout_error


class Options(Location):
    annotations: str                 # Karpathy split JSON, relative to path
    images: str = ""                 # image folder relative to path ("" when the JSON's filepath names it, as for COCO)
    language: str = "en"             # language of sentences[].raw
    captions: dict[str, str] = {}    # other languages: language -> JSONL file relative to path
    max_captions: Optional[int] = Field(default=None, gt=0)  # keep only the first N captions per image


def _expected(spec: TaskSpec, options: Options, language: str) -> list[str]:
    """Every file and folder the task needs, caption files of all its languages included."""
    images = f"{options.images}/" if options.images else "the image folders named by the JSON's 'filepath' (e.g. val2014/)"
    wanted = [lang for lang in dict.fromkeys([*spec.languages, language]) if lang in options.captions and lang != options.language]
    return [options.annotations, images, *(options.captions[lang] for lang in wanted)]


@functools.lru_cache(maxsize=8)
def _split(annotations: str, mtime: float, split: str) -> tuple[tuple[tuple[str, str, tuple[str, ...]], ...], tuple[str, ...]]:
    """((filepath, filename, captions) of the split's images, in file order), every split name found."""
    data = json.loads(read_text(annotations))
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise ValueError("it has no top-level 'images' list")
    rows, splits = [], set()
    for entry in data["images"]:
        splits.add(str(entry.get("split")))
        if entry.get("split") != split:
            continue
        captions = tuple(s["raw"].strip() for s in entry.get("sentences", []) if s.get("raw", "").strip())
        rows.append((entry.get("filepath", ""), entry["filename"], captions))
    return tuple(rows), tuple(sorted(splits))


def _translations(spec: TaskSpec, path: Path) -> dict[str, list[str]]:
    pairs = jsonl_records(spec, path,
                          lambda record: (os.path.basename(record["image"]), [c.strip() for c in record["captions"] if c.strip()]),
                          "a JSON object with 'image' and a 'captions' list", "fix or re-download the captions file")
    return dict(pairs)


def load(spec: TaskSpec, options: Options, language: str, data_root: Path) -> RetrievalData:
    root = resolve_path(options.path, data_root)
    annotations = root / options.annotations
    if not annotations.is_file():
        missing = str(root) if not root.is_dir() else options.annotations
        raise layout_error(spec, root, missing, _expected(spec, options, language), options.download)
    if options.images and not (root / options.images).is_dir():
        raise layout_error(spec, root, f"the image folder {options.images}/", _expected(spec, options, language), options.download)
    try:
        rows, splits = _split(str(annotations), annotations.stat().st_mtime, spec.split)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ClipbenchError(f"task '{spec.name}': {annotations} is not a Karpathy split file ({exc}); re-download it") from None
    if not rows:
        raise ClipbenchError(f"task '{spec.name}': {annotations} has no images in split '{spec.split}' (splits there: {', '.join(splits)}); "
                             "set the task's split to one of them")

    folders = sorted({os.path.join(options.images, filepath) for filepath, _, _ in rows} - {""})
    absent_folders = [f"{folder}/" for folder in folders if not (root / folder).is_dir()]
    if absent_folders:
        expected = [options.annotations, *(f"{folder}/" for folder in folders), *_expected(spec, options, language)[2:]]
        raise layout_error(spec, root, f"the image folder {absent_folders[0]}", expected, options.download)

    if language == options.language:
        captions, source = [list(c) for _, _, c in rows], annotations
    elif language in options.captions:
        path = root / options.captions[language]
        if not path.is_file():
            raise layout_error(spec, root, options.captions[language], _expected(spec, options, language), options.download)
        by_name = _translations(spec, path)
        absent = [name for _, name, _ in rows if name not in by_name]
        if absent:
            raise ClipbenchError(f"task '{spec.name}': {len(absent)} of {len(rows)} '{spec.split}' images have no line in {path}, "
                                 f"the first is {absent[0]}; use the complete {language} captions file")
        captions, source = [by_name[name] for _, name, _ in rows], path
    else:
        known = ", ".join([options.language, *options.captions])
        raise ClipbenchError(f"task '{spec.name}': no {language} captions (this dataset has: {known}); "
                             "add a captions file for it under [dataset].captions")

    texts, owners = [], []
    for index, image_captions in enumerate(captions):
        if not image_captions:  # an image no caption names could never be found: it would only lower i2t recall
            raise ClipbenchError(f"task '{spec.name}': {source} gives image {rows[index][1]} no non-blank {language} caption; "
                                 "fix the file (or use the complete one)")
        for text in image_captions[:options.max_captions]:
            texts.append(text)
            owners.append(index)
    relative = [os.path.join(options.images, filepath, filename) for filepath, filename, _ in rows]
    folder = root / options.images if options.images else root
    images = file_images(spec, root, relative, f"{folder} ({spec.split})", str(annotations))
    return RetrievalData(images=images, texts=texts, text_to_image=np.array(owners, dtype=np.int64))


FORMAT = Format(options=Options, load=load, kinds=("retrieval",))
