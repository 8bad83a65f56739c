"""Per-query outcomes on disk (`clipbench run --save-queries`): the `Queries` columns of one result, so that
a later command (`compare --paired`, `table --significance`) can resample them as the run's own bootstrap does,
recomputing every metric through its kind's metric record.

Beside each result `NAME.json` the run writes `NAME.queries.npz`: a numpy archive (no pickles) holding one array
per column (one row per query; classification's `mean_per_class_recall` reads the full logits, N x C float32,
so that the argmax among the classes present in a resample is recomputed exactly as `bootstrap` does) and
`__meta__`, a JSON string: format, version, task, language, variant, kind, the dataset fingerprint, the
result's image and text counts, the size of each query set in the kind's draw order, each column's query
set and the metric names whose columns are there. The result names the file in `run.queries`.

`load` checks the file against the result that names it: the fingerprint and counts must be the result's,
and the metrics recomputed from the columns must equal the result's values (a file left from another run
fails there).
"""

from __future__ import annotations

import json
import math
import zipfile
from pathlib import Path

import numpy as np

from ..errors import ClipbenchError
from ..outputs import write_atomic_with
from ..results import Result
from .base import Kind, Queries

FORMAT = "clipbench-queries"
VERSION = 1
META = "__meta__"
SUFFIX = ".queries.npz"
RERUN = "rerun with --save-queries"


def queries_file(result: Path) -> Path:
    """Where --save-queries writes the per-query outcomes of the result at `result`: beside it."""
    result = Path(result)
    return result.with_name(result.stem + SUFFIX)


def meta_of(result: Result, queries: Queries) -> dict:
    return {"format": FORMAT, "version": VERSION, "task": result.task, "language": result.language,
            "variant": result.variant, "kind": result.kind, "fingerprint": result.dataset.fingerprint,
            "n_images": result.dataset.n_images, "n_texts": result.dataset.n_texts, "sizes": dict(queries.sizes),
            "columns": {name: query_set for name, (query_set, _) in queries.columns.items()},
            "metrics": [metric.name for metric in queries.metrics]}


def write(path: Path, queries: Queries, result: Result, option: str = "--output") -> Path:
    """The columns of `queries` and what they belong to (see the module docstring), written atomically."""
    arrays = {}
    for name, (_, rows) in queries.columns.items():
        array = np.asarray(rows)
        if array.dtype == object or name == META:  # a programming error: the file must load without pickles
            raise ValueError(f"column '{name}' cannot be stored ({array.dtype})")
        arrays[name] = array
    arrays[META] = np.array(json.dumps(meta_of(result, queries)))
    return write_atomic_with(path, lambda out: np.savez(out, **arrays), option)


def _same(a, b) -> bool:
    if a is None or b is None:
        return a is b
    return (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


def load(result_path: Path, result: Result, kind: Kind, names: list[str]) -> Queries:
    """The per-query outcomes of the result read from `result_path`, with the metrics `names` (of `kind`)."""
    result_path = Path(result_path)
    stored = result.run.queries if result.run is not None else None
    if not stored:
        raise ClipbenchError(f"{result_path} has no per-query outcomes (no run.queries); {RERUN} to test it", exit_code=2)
    path = result_path.parent / stored
    if not path.is_file():
        raise ClipbenchError(f"{path} (the per-query outcomes {result_path} names) is missing; {RERUN}", exit_code=2)
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
        meta = json.loads(str(arrays.pop(META)))
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, json.JSONDecodeError) as exc:
        raise ClipbenchError(f"{path}: not a per-query outcomes file ({type(exc).__name__}: {exc}); {RERUN}", exit_code=2) from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ClipbenchError(f"{path}: not a clipbench per-query outcomes file; {RERUN}", exit_code=2)
    if meta.get("version") != VERSION:
        raise ClipbenchError(f"{path}: version {meta.get('version')} is not one this clipbench reads ({VERSION}); {RERUN}", exit_code=2)
    ours = {"task": result.task, "language": result.language, "variant": result.variant, "kind": result.kind,
            "fingerprint": result.dataset.fingerprint, "n_images": result.dataset.n_images, "n_texts": result.dataset.n_texts}
    for field, value in ours.items():
        if meta.get(field) != value:
            raise ClipbenchError(f"{path}: its {field} ({meta.get(field)}) is not that of {result_path} ({value}), so it "
                                 f"holds another run's queries; {RERUN}", exit_code=2)
    metrics = tuple(kind.metric(name) for name in names)
    sizes, columns = meta.get("sizes") or {}, {}
    for metric in metrics:
        for column in metric.reads:
            rows = arrays.get(column.name)
            if rows is None or column.queries not in sizes or len(rows) != sizes[column.queries]:
                raise ClipbenchError(f"{path}: no column '{column.name}' with one row per query of "
                                     f"'{column.queries}' (metric {metric.name}); {RERUN}", exit_code=2)
            columns[column.name] = (column.queries, rows)
    settings = result.protocol.settings if result.protocol else {}  # the metric options it was measured under
    queries = Queries(metrics, {name: int(n) for name, n in sizes.items()}, columns, settings)
    for name, value in queries.values().items():
        if not _same(value, result.metrics.get(name)):
            raise ClipbenchError(f"{path}: its queries give {name} = {value!r} but {result_path} records "
                                 f"{result.metrics.get(name)!r}, so they are another run's; {RERUN}", exit_code=2)
    return queries
