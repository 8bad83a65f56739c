"""CAPIVARA's webdatasets: tar shards whose samples hold an image and a `json` member with one caption list
per language, `captions-<lang>` (captions-en, captions-pt, ...).

    <path>/<split>/nshards.txt, <path>/<split>/0.tar ...    CLIP_benchmark's shard layout (default), or
    <path>/<shards>                                         a glob, `{split}` replaced: shards = "*.tar" for
                                                            CAPIVARA's flickr30k_val/00000.tar ... folders

Sample members are grouped by key as in `wds.py`; the image is the first of webp|png|jpg|jpeg found.

Translations: CAPIVARA's Portuguese lists interleave two machine translations of each English caption,
MarianMT at even positions and Google at odd ones. Every CAPIVARA retrieval script since 2023-08-11 reads
them so: hiaac-nlp/CAPIVARA @ 375bc336d2fe7fdba230c7a3230ab596280bc614, clip_pt/src/evaluate/zero_shot_retrieval.py
(tokenize: "google" -> captions-pt[1::2], "marian" -> captions-pt[0::2]), and zero_shot_retrieval_clip_benchmark.py
from d76dec2 until its removal in 5bff4ff (the scripts of early 2023, e.g. 448c1e5, had the opposite). The same
tokenize() splits Portuguese only ("pt has 10 captions, 5 by google and 5 by marian"): its other languages
(--language xh, hi) keep their whole list, and so does a list of one caption, as in PraCegoVer.
`interleaved` names the languages whose lists interleave the two translations (default ["pt"], CAPIVARA's
layout); `translation` picks "google" (CAPIVARA's published setting), "marian", or "all" (every caption) for
those. Every other language, `source_language` included, is read whole.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import model_validator

from ..errors import ClipbenchError
from ..specs import Location, TaskSpec
from ..text import decode
from .base import Format, RetrievalData, resolve_path
from .files import layout_error
from .wds import IMAGE_EXTENSIONS, TarImages, _check_root, scan


class Options(Location):
    shards: str = ""                 # glob relative to path ({split} is replaced); "" = <split>/nshards.txt layout
    source_language: str = "en"      # the untranslated captions
    translation: Literal["google", "marian", "all"] = "google"
    interleaved: list[str] = ["pt"]  # languages whose lists interleave MarianMT (even) and Google (odd) captions

    @model_validator(mode="after")
    def _source_is_not_translated(self) -> "Options":
        if self.source_language in self.interleaved:
            raise ValueError(f"interleaved: '{self.source_language}' is the source_language, whose captions are "
                             "not translations; remove it from interleaved")
        return self


def _shards(spec: TaskSpec, options: Options, root: Path) -> list[Path]:
    if not options.shards:
        nshards = root / spec.split / "nshards.txt"
        if not nshards.is_file():
            missing = str(root) if not root.is_dir() else f"{spec.split}/nshards.txt"
            raise layout_error(spec, root, missing, [f"{spec.split}/nshards.txt", f"{spec.split}/0.tar ..."], options.download)
        return _check_root(root, spec.split)
    pattern = options.shards.replace("{split}", spec.split)
    found = sorted(root.glob(pattern)) if root.is_dir() else []
    if not found:
        raise layout_error(spec, root, f"no tar shard matching '{pattern}'", [f"{pattern} (uncompressed tar shards)"], options.download)
    return found


def _captions(spec: TaskSpec, options: Options, sample: dict, language: str) -> list[str]:
    where = f"{sample['__shard__']}: sample '{sample['__key__']}'"
    if "json" not in sample:
        raise ClipbenchError(f"task '{spec.name}': {where} has no json member with captions; fix or remove it")
    text = decode(sample["json"], f"{where}: its json member")
    try:
        record = json.loads(text)
    except ValueError:
        raise ClipbenchError(f"task '{spec.name}': {where} has a json member that is not valid JSON; re-download the shard") from None
    key = f"captions-{language}"
    if not isinstance(record, dict) or not isinstance(record.get(key), list):
        raise ClipbenchError(f"task '{spec.name}': {where} has no '{key}' caption list; this dataset has no {language} captions")
    if not all(isinstance(c, str) for c in record[key]):
        raise ClipbenchError(f"task '{spec.name}': {where} has a '{key}' entry that is not a string; re-download the shard")
    captions = [c.strip() for c in record[key]]
    if language in options.interleaved and len(captions) > 1 and options.translation != "all":
        captions = captions[1::2] if options.translation == "google" else captions[0::2]
    captions = [c for c in captions if c]
    if not captions:  # an image no caption names could never be found: it would only lower i2t recall
        raise ClipbenchError(f"task '{spec.name}': {where} has no non-blank '{key}' caption; fix or remove that sample")
    return captions


def load(spec: TaskSpec, options: Options, language: str, data_root: Path) -> RetrievalData:
    root = resolve_path(options.path, data_root)
    samples = scan(_shards(spec, options, root), metadata=("json",))
    entries, texts, owners = [], [], []
    digest = hashlib.sha256()
    for index, sample in enumerate(samples):
        images = sample.get("images", {})
        ext = next((e for e in IMAGE_EXTENSIONS if e in images), None)
        if ext is None:
            raise ClipbenchError(f"task '{spec.name}': {sample['__shard__']}: sample '{sample['__key__']}' has no image "
                                 f"({'|'.join(IMAGE_EXTENSIONS)}); fix or remove it")
        shard, offset, size = images[ext]
        entries.append((shard, offset, size, sample["__key__"]))
        digest.update(f"{Path(shard).name}|{sample['__key__']}|{size}\n".encode("utf-8"))
        for text in _captions(spec, options, sample, language):
            texts.append(text)
            owners.append(index)
    images = TarImages(entries, f"{root} ({spec.split})", digest.hexdigest())
    return RetrievalData(images=images, texts=texts, text_to_image=np.array(owners, dtype=np.int64))


FORMAT = Format(options=Options, load=load, kinds=("retrieval",))
