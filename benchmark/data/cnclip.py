"""Chinese-CLIP's retrieval layout (Flickr30k-CN, COCO-CN, MUGE), as in its preprocessed downloads.

    <path>/<split>_imgs.tsv      one image per line: image_id<TAB>base64 of the image file's bytes
    <path>/<split>_texts.jsonl   one text per line: {"text_id": int, "text": str, "image_ids": [int, ...]}

Chinese-CLIP names its validation split `valid`: the task's split goes through `split_names`
(default {val = "valid"}) to the file prefix. The TSV is indexed once (byte offset and length of each line);
an image is read and base64-decoded only when it is embedded. urlsafe and standard base64 are both accepted
(Chinese-CLIP writes urlsafe and decodes with base64.urlsafe_b64decode).

Protocol (cn_clip/eval/evaluation.py, evaluation_tr.py, transform_ir_annotation_to_tr.py): a text may name
several images. Text->image R@K counts a text as found when ANY of its image_ids is among the top K images
(ranked over every image of the TSV); image->text R@K is computed over the images that some text names
(the inverted annotation), found when ANY of their texts is among the top K texts. Both average over their
queries. `text_to_image` holds each text's first image; when a text names several images, or an image is
named by no text, `positives` carries the whole (text, image) relation for the metric code.
Texts are passed as written; Chinese-CLIP's own lower-casing and quote mapping is its tokenizer's business.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import ClipbenchError
from ..specs import Location, TaskSpec
from .base import Format, RetrievalData, resolve_path
from .files import jsonl_records, layout_error


class Options(Location):
    split_names: dict[str, str] = {"val": "valid"}


@dataclass
class TsvImages:
    """Base64 images, one per TSV line, read by byte offset."""

    tsv: str
    entries: list[tuple[int, int, int]]  # (image_id, line offset, line length)
    location: str
    fingerprint: str

    def __len__(self) -> int:
        return len(self.entries)

    def open(self, index: int) -> Image.Image:
        _, offset, length = self.entries[index]
        with open(self.tsv, "rb") as handle:
            handle.seek(offset)
            line = handle.read(length)
        encoded = line.split(b"\t", 1)[1].strip().replace(b"-", b"+").replace(b"_", b"/")
        try:
            data = base64.b64decode(encoded + b"=" * (-len(encoded) % 4))
        except (binascii.Error, ValueError):
            raise ValueError("the base64 image data does not decode") from None
        image = Image.open(io.BytesIO(data))
        image.load()
        return image

    def describe(self, index: int) -> str:
        return f"{self.tsv}: image_id {self.entries[index][0]}"


def _index(spec: TaskSpec, tsv: Path) -> tuple[list[tuple[int, int, int]], str]:
    entries, seen = [], set()
    digest = hashlib.sha256(tsv.name.encode("utf-8"))
    offset = 0
    with open(tsv, "rb") as handle:
        for number, line in enumerate(handle, 1):
            length = len(line)
            head, tab, _ = line[:64].partition(b"\t")
            if line.strip():
                try:
                    if not tab:
                        raise ValueError
                    image_id = int(head)
                except ValueError:
                    raise ClipbenchError(f"task '{spec.name}': {tsv} line {number} is not 'image_id<TAB>base64'; re-download the file") from None
                if image_id in seen:
                    raise ClipbenchError(f"task '{spec.name}': {tsv} lists image_id {image_id} twice (line {number}); re-download the file")
                seen.add(image_id)
                entries.append((image_id, offset, length))
                digest.update(f"|{image_id}:{length}".encode("utf-8"))
            offset += length
    return entries, digest.hexdigest()


def _text_record(record: dict) -> tuple[str, list[int]]:
    text, image_ids = record["text"], [int(i) for i in record["image_ids"]]
    if not isinstance(text, str) or not text.strip():  # str(None) would make the text "None"
        raise ValueError("no text")
    if not image_ids:
        raise ValueError("no image_ids")
    return text.strip(), image_ids


def _texts(spec: TaskSpec, path: Path) -> list[tuple[str, list[int]]]:
    return jsonl_records(spec, path, _text_record, "a JSON object with a non-blank 'text' and a non-empty 'image_ids' list",
                         "re-download the file")


def load(spec: TaskSpec, options: Options, language: str, data_root: Path) -> RetrievalData:
    root = resolve_path(options.path, data_root)
    prefix = options.split_names.get(spec.split, spec.split)
    tsv, jsonl = root / f"{prefix}_imgs.tsv", root / f"{prefix}_texts.jsonl"
    expected = [tsv.name, jsonl.name]
    for path in (tsv, jsonl):
        if not path.is_file():
            raise layout_error(spec, root, path.name if root.is_dir() else str(root), expected, options.download)

    entries, digest = _index(spec, tsv)
    position = {image_id: i for i, (image_id, _, _) in enumerate(entries)}
    records = _texts(spec, jsonl)
    unknown = [i for _, ids in records for i in ids if i not in position]
    if unknown:
        raise ClipbenchError(f"task '{spec.name}': {len(unknown)} image_ids named in {jsonl} are not in {tsv}, the first is "
                             f"{unknown[0]}; use the {tsv.name} and {jsonl.name} of one download")

    texts, first, pairs = [], [], []
    for t, (text, image_ids) in enumerate(records):
        texts.append(text)
        first.append(position[image_ids[0]])
        pairs.extend((t, position[i]) for i in dict.fromkeys(image_ids))
    named = {image for _, image in pairs}
    multi = len(pairs) != len(records) or len(named) != len(entries)
    positives = np.array(pairs, dtype=np.int64).reshape(-1, 2) if multi else None
    images = TsvImages(str(tsv), entries, f"{tsv}", digest)
    return RetrievalData(images=images, texts=texts, text_to_image=np.array(first, dtype=np.int64), positives=positives)


FORMAT = Format(options=Options, load=load, kinds=("retrieval",))
