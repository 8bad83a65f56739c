"""The `pairs` format (CFT-CLIP's news thumbnails): a CSV or JSONL of image, title, summary, label, split.

    <path>/<annotations>     columns/keys: image (path relative to <path>/<images>), title, summary,
                             label (1 = the image shows an actor of the news event, 0 = not), split
    <path>/<images>/...      the images
Rows of the validation split only set the decision threshold (their labels are never read); rows of the
task's split are scored. The text compared with the image is the `text_field` column (title or summary).
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from ..errors import ClipbenchError
from ..specs import Location, TaskSpec
from ..text import read_text
from .base import Format, PairData, resolve_path
from .files import file_images, jsonl_records, layout_error

COLUMNS = ("image", "title", "summary", "label", "split")


class Options(Location):
    annotations: str
    images: str = ""
    text_field: Literal["title", "summary"] = "title"
    validation_split: str = "validation"


def _object(record) -> dict:
    if not isinstance(record, dict):
        raise TypeError("not an object")
    return record


def _read(spec: TaskSpec, path: Path) -> pd.DataFrame:
    if path.suffix != ".csv":
        return pd.DataFrame(jsonl_records(spec, path, _object, "a JSON object", "fix the file"))
    text = read_text(path, f"task '{spec.name}': {path}")
    try:
        return pd.read_csv(io.StringIO(text), dtype={"image": str, "title": str, "summary": str, "split": str})
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else "no rows"
        raise ClipbenchError(f"task '{spec.name}': {path} is not a readable CSV ({reason}); fix the file") from None


def load(spec: TaskSpec, options: Options, language: str, data_root: Path) -> PairData:
    root = resolve_path(options.path, data_root)
    table_path = root / options.annotations
    expected = [options.annotations, f"{options.images or '.'}/<image files>"]
    if not table_path.is_file():
        raise layout_error(spec, root, options.annotations, expected, options.download)
    table = _read(spec, table_path)
    missing = [c for c in COLUMNS if c not in table.columns]
    if missing:
        raise ClipbenchError(f"task '{spec.name}': {table_path} lacks the column(s) {missing}; it needs {list(COLUMNS)}")
    validation = table[table["split"] == options.validation_split]
    test = table[table["split"] == spec.split]
    for name, part in ((options.validation_split, validation), (spec.split, test)):
        if part.empty:
            raise ClipbenchError(f"task '{spec.name}': {table_path} has no rows with split '{name}'; the protocol needs both "
                                 f"'{options.validation_split}' (threshold) and '{spec.split}' (scored) rows")
    rows = pd.concat([validation, test])
    texts = rows[options.text_field].fillna("").astype(str).tolist()
    labels = pd.to_numeric(test["label"], errors="coerce")
    if labels.isna().any() or not labels.isin([0, 1]).all():
        raise ClipbenchError(f"task '{spec.name}': {table_path}: every '{spec.split}' row needs a 0/1 label")
    images = file_images(spec, root / options.images, rows["image"].tolist(), f"{root}/{spec.split}", str(table_path))
    return PairData(images, texts, labels.to_numpy(dtype=np.int64), len(validation), options.text_field)


FORMAT = Format(options=Options, load=load, kinds=("pair",))
