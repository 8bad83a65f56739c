"""`clipbench export RESULTS... --format clip-benchmark -o FOLDER`: results as CLIP_benchmark's cli writes them,
one JSON per result, and the long CSV its `build` subcommand makes from them (FOLDER/benchmark.csv, build's
default name).

Each file has CLIP_benchmark's keys in its order, `{"dataset", "model", "pretrained", "task", "metrics",
"language"}`, serialised as its `json.dump(dump, f)` does, and is named by its default --output template
(benchmark.interop.file_name). The names are benchmark.interop's, read backwards: our task becomes its
dataset where both evaluate the same split, else `clipbench/<task>`; t2i_recall@K becomes
image_retrieval_recall@K and i2t_recall@K text_retrieval_recall@K; zh and ja are cn and jp for classification.
An imported result is written back under the names it was read with. `model` is the model's id (the open_clip
architecture, as CLIP_benchmark's --model), `pretrained` its pretrained tag or checkpoint ("" when it has none).

What CLIP_benchmark has no name for is not written: the mean recalls (the means of the recalls written beside
them; reading the file back derives them again), map_11point and roc_auc (ELEVATER's; a note names them),
and a result of a kind it does not have (pair scoring), of a --limit subset (the file could not say it is one)
or with no metric left is skipped with a note. Two results that would share a file name (the same model,
pretrained, dataset, language and task: seeds of one checkpoint, say) are refused: export them apart.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path

from .. import interop
from ..errors import ClipbenchError
from ..outputs import check_folder, write_text_atomic
from ..results import Result, read_all

FORMATS = ("clip-benchmark",)
CSV_NAME = "benchmark.csv"  # clip_benchmark build's default --output
QUIET_DROPS = {"t2i_mean_recall", "i2t_mean_recall", "mean_recall"}  # derived again when read back


def _note(line: str) -> None:
    print(line, file=sys.stderr)


def _model(result: Result) -> tuple[str, str]:
    extra = result.model.model_extra or {}
    model = extra.get("id") if isinstance(extra.get("id"), str) else result.model.name
    pretrained = extra.get("pretrained") if isinstance(extra.get("pretrained"), str) else ""
    return model, pretrained


def to_clip_benchmark(result: Result) -> tuple[dict | None, str | None]:
    """The CLIP_benchmark dump of `result` and a note on what was left out of it; (None, why) when it has none."""
    if result.kind not in interop.TASK_OF_KIND:
        return None, f"a {result.kind} result: CLIP_benchmark has no such task"
    if result.limit is not None:
        return None, f"a --limit {result.limit.n} subset: a CLIP_benchmark file could not say so"
    imported = result.imported
    metrics = {}
    for name in interop.their_metric_order(result.kind):
        if name in result.metrics:
            theirs = imported.metrics.get(name) if imported else None
            metrics[theirs or interop.their_metric(result.kind, name)] = result.metrics[name]
    dropped = [m for m in result.metrics if interop.their_metric(result.kind, m) is None and m not in QUIET_DROPS]
    if not metrics:
        return None, f"no metric CLIP_benchmark has a name for ({', '.join(result.metrics)})"
    if imported is not None:
        dump = {"dataset": imported.dataset, "model": imported.model, "pretrained": imported.pretrained,
                "task": imported.task, "metrics": metrics, "language": imported.language or "en"}
    else:
        model, pretrained = _model(result)
        dump = {"dataset": interop.their_dataset(result.task, result.language), "model": model,
                "pretrained": pretrained, "task": interop.TASK_OF_KIND[result.kind], "metrics": metrics,
                "language": interop.their_language(result.kind, result.language)}
    why = f"left out {', '.join(dropped)} (no CLIP_benchmark name)" if dropped else None
    return dump, why


def build_csv(dumps: list[dict]) -> str:
    """What `clip_benchmark build` writes for these files, given in this order: the same rows, cells and bytes
    (csv.DictWriter, "\\r\\n" line ends), its columns in order of first appearance (interop.build_rows)."""
    fields, rows = interop.build_rows(dumps)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=fields)
    writer.writeheader()
    for row in rows:
        writer.writerow(row)
    return out.getvalue()


def export(paths: list[Path], fmt: str, output: Path, note=_note) -> list[Path]:
    """Write RESULTS as CLIP_benchmark files into `output`; the paths written, the CSV last."""
    if fmt not in FORMATS:
        raise ClipbenchError(f"unknown export format '{fmt}'; use one of {', '.join(FORMATS)}", exit_code=2)
    check_folder(output, "--output")
    results = read_all(paths, note)
    if not results:
        raise ClipbenchError(f"no result files found in {', '.join(map(str, paths))}", exit_code=2)
    files: dict[str, tuple[dict, Result]] = {}
    for result in results:
        dump, why = to_clip_benchmark(result)
        where = result.imported.file if result.imported else f"{result.group} on {result.task} [{result.language}]"
        if dump is None:
            note(f"note: skipped {where}: {why}")
            continue
        if why:
            note(f"note: {where}: {why}")
        name = interop.file_name(dump)
        if name in files:
            other = files[name][1]
            first = other.imported.file if other.imported else f"{other.group} on {other.task} [{other.language}]"
            raise ClipbenchError(
                f"{first} and {where} would both be written to {output / name} (same dataset, model, pretrained, "
                "language and task: CLIP_benchmark's files cannot tell them apart); export them to separate folders",
                exit_code=2)
        files[name] = (dump, result)
    if not files:
        raise ClipbenchError("none of the results has a CLIP_benchmark equivalent (see the notes above)", exit_code=2)
    written = [write_text_atomic(output / name, json.dumps(dump), "--output") for name, (dump, _) in sorted(files.items())]
    written.append(write_text_atomic(output / CSV_NAME, build_csv([files[n][0] for n in sorted(files)]), "--output"))
    return written
