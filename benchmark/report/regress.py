"""Regression tracking: a baseline of main scores, and the comparison that fails CI when one drops."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import ClipbenchError
from ..outputs import write_json_atomic
from ..results import BASELINE_KIND, BaselineEntry, Result, load_json, read_all, validated
from .comparable import ASPECTS, collect, evaluated_as

# baseline save and compare have no --force: a number that averages unlike results must not reach a baseline
APART = "or pass only results that were evaluated alike (move the others to another folder)"


def summarise(results: list[Result]) -> list[BaselineEntry]:
    """One entry per `Key` (group, task, language): the main score (mean over checkpoints), what it was
    evaluated on (dataset fingerprint, prompts, --limit: see benchmark.comparable) and, when a single result
    carries a bootstrap, its 95% interval."""
    entries = []
    for key, members in sorted(collect(results, hint=APART).items()):
        metric = members[0].main_score
        entries.append(BaselineEntry(
            group=key.group, task=key.task, language=key.language, main_score=metric,
            value=float(np.mean([m.metrics[metric] for m in members])), n_checkpoints=len(members),
            ci95=members[0].interval(metric) if len(members) == 1 else None, **evaluated_as(members[0]),
            **({"imported": members[0].imported.source} if members[0].imported is not None else {})))
    return entries


def check_provenance(current: list[BaselineEntry], baseline: list[BaselineEntry], run: str, before: str) -> str | None:
    """Imported results (benchmark.interop) record no dataset fingerprint, prompts or protocol, so a regression
    check cannot tell whether they and clipbench's measure one thing: a run of only one kind against a baseline
    of only the other is refused (ClipbenchError, exit 2). Imported entries are compared with imported entries
    (their groups are marked, so they never meet clipbench's): the returned note says that their likeness is
    assumed, not checked; None when no imported entry is compared."""
    ours, theirs = {e.imported for e in current}, {e.imported for e in baseline}  # None: clipbench's own
    if ours and theirs and ((ours == {None} and None not in theirs) or (theirs == {None} and None not in ours)):
        imported, other, sources = (before, run, theirs) if ours == {None} else (run, before, ours)
        raise ClipbenchError(
            f"{imported} holds only results imported from {' and '.join(sorted(sources))} and {other} only "
            "clipbench's: an imported result records no dataset fingerprint, prompts or protocol, so whether the "
            "two measure one thing cannot be checked; put them side by side with 'clipbench table' instead",
            exit_code=2)
    shared = {e.key for e in current if e.imported} & {e.key for e in baseline if e.imported}
    if not shared:
        return None
    return (f"note: {len(shared)} entries imported from result files of another harness are compared with imported "
            "entries; those files record no dataset fingerprint, prompts or protocol, so that both sides were "
            "evaluated alike is assumed, not checked.")


def save_baseline(paths: list[Path], output: Path) -> Path:
    results = read_all(paths)
    if not results:
        raise ClipbenchError(f"no result files found in {', '.join(map(str, paths))}; run 'clipbench run' first")
    payload = {"schema_version": 1, "kind": BASELINE_KIND,
               "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
               "entries": [entry.model_dump(exclude_unset=True) for entry in summarise(results)]}
    return write_json_atomic(output, payload, "--output")


def _baseline_file(path: Path, payload: dict) -> list[BaselineEntry]:
    fix = "regenerate it with 'clipbench baseline save'"
    version = payload.get("schema_version", 0)
    if not isinstance(version, int):
        raise ClipbenchError(f"{path}: field 'schema_version': not an integer; {fix}")
    if version > 1:
        raise ClipbenchError(f"{path}: baseline schema_version {version} is newer than this clipbench; upgrade")
    entries = payload.get("entries")
    if not isinstance(entries, list):
        raise ClipbenchError(f"{path}: field 'entries': {'missing' if entries is None else 'not a list'}; {fix}")
    out = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise ClipbenchError(f"{path}: entries[{i}]: not an object; {fix}")
        out.append(validated(BaselineEntry, entry, f"{path}: entries[{i}]", fix))
    return out


def load_baseline(path: Path) -> list[BaselineEntry]:
    """A baseline file, or a folder/file of result JSONs used as the baseline. One without entries is refused:
    a comparison with nothing passes whatever the run."""
    if path.is_file():
        payload = load_json(path)
        if isinstance(payload, dict) and payload.get("kind") == BASELINE_KIND:
            entries = _baseline_file(path, payload)
            if not entries:
                raise ClipbenchError(f"baseline {path} has no entries; save one from a run's results with 'clipbench baseline save'")
            return entries
    entries = summarise(read_all([path]))
    if not entries:
        raise ClipbenchError(f"baseline {path} holds no result files; pass a baseline file or a folder of results")
    return entries


def _differs(new: BaselineEntry, old: BaselineEntry) -> list[str]:
    """The aspects the baseline entry records (baselines saved before issue 8 record none) that differ in the run."""
    return [what for what, key, _ in ASPECTS if key in old.model_fields_set and getattr(old, key) != getattr(new, key)]


def compare(current: list[BaselineEntry], baseline: list[BaselineEntry], tolerance: float = 0.0, use_ci: bool = False) -> tuple[pd.DataFrame, bool]:
    """A row per (group, task, language) in either side of two entry lists (`summarise`, `load_baseline`), and
    whether any main score regressed, went missing or was measured differently from the baseline."""
    now = {entry.key: entry for entry in current}
    before = {entry.key: entry for entry in baseline}
    rows, failed = [], False
    for key in sorted(set(now) | set(before)):
        new, old = now.get(key), before.get(key)
        row = {"model": key.group, "task": key.task, "lang": key.language, "metric": (new or old).main_score,
               "baseline": old.value if old else None, "current": new.value if new else None}
        if old is None:
            status = "new"
        elif new is None:
            status, failed = "MISSING", True
        elif new.main_score != old.main_score:
            status, failed = "MAIN SCORE CHANGED", True
        elif _differs(new, old):  # other images, prompts or --limit: the two numbers do not measure one thing
            status, failed = "NOT COMPARABLE", True
        else:
            floor = old.value - tolerance
            if use_ci and old.ci95:
                floor = min(floor, old.ci95[0])
            if new.value < floor:
                status, failed = "REGRESSION", True
            elif new.value > old.value + tolerance:
                status = "improved"
            else:
                status = "ok"
        row["delta"] = (row["current"] - row["baseline"]) if old and new else None
        row["status"] = status
        rows.append(row)
    return pd.DataFrame(rows), failed


def none_shared(frame: pd.DataFrame) -> bool:
    """The run has none of the baseline's entries: every row is missing from one side."""
    return set(frame["status"]) <= {"new", "MISSING"}


def not_comparable(frame: pd.DataFrame) -> list[str]:
    return [f"{r.model} {r.task} [{r.lang}]" for r in frame.itertuples() if r.status == "NOT COMPARABLE"]


def render(frame: pd.DataFrame, failed: bool, tolerance: float, use_ci: bool) -> str:
    shown = frame.copy()
    for column in ("baseline", "current"):
        shown[column] = [("-" if v is None or pd.isna(v) else f"{100 * v:.2f}") for v in shown[column]]
    shown["delta"] = [("-" if v is None or pd.isna(v) else f"{100 * v:+.2f}") for v in shown["delta"]]
    rule = f"tolerance {100 * tolerance:.2f} points" + (", or below the baseline's 95% interval" if use_ci else "")
    if none_shared(frame):
        verdict = f"**FAIL**: the run has none of the baseline's {int((frame['status'] == 'MISSING').sum())} entries"
    elif not_comparable(frame):
        verdict = ("**FAIL**: a main score was measured on other data, prompts or --limit than the baseline "
                   "(NOT COMPARABLE), dropped or went missing")
    elif failed:
        verdict = "**FAIL**: a main score dropped or went missing"
    else:
        verdict = "**PASS**: no main score dropped"
    table = shown.to_markdown(index=False, tablefmt="github", disable_numparse=True)
    return f"{table}\n\n{verdict} ({rule}; scores in percent)."
