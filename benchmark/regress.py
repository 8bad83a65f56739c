"""Regression tracking: a baseline of main scores, and the comparison that fails CI when one drops."""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import ClipbenchError
from .results import read_all, write_atomic

BASELINE_KIND = "clipbench-baseline"


def _key(result: dict) -> tuple[str, str, str]:
    return (result["model"].get("group") or result["model"]["name"], result["task"], result["language"])


def summarise(results: list[dict]) -> list[dict]:
    """One entry per (group, task, language): the main score (mean over checkpoints) and, when a single
    result carries a bootstrap, its 95% interval."""
    grouped: dict[tuple, list[dict]] = defaultdict(list)
    for result in results:
        grouped[_key(result)].append(result)
    entries = []
    for (group, task, language), members in sorted(grouped.items()):
        metric = members[0]["main_score"]
        values = [m["metrics"][metric] for m in members]
        boot = members[0].get("bootstrap") if len(members) == 1 else None
        entries.append({
            "group": group, "task": task, "language": language, "main_score": metric,
            "value": float(np.mean(values)), "n_checkpoints": len(members),
            "ci95": boot["ci95"].get(metric) if boot else None,
        })
    return entries


def save_baseline(paths: list[Path], output: Path) -> Path:
    results = read_all(paths)
    if not results:
        raise ClipbenchError(f"no result files found in {', '.join(map(str, paths))}; run 'clipbench run' first")
    payload = {"schema_version": 1, "kind": BASELINE_KIND,
               "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
               "entries": summarise(results)}
    return write_atomic(output, payload)


def load_baseline(path: Path) -> list[dict]:
    """A baseline file, or a folder/file of result JSONs used as the baseline."""
    if path.is_file():
        try:
            payload = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise ClipbenchError(f"{path}: not readable as JSON ({exc})") from None
        if isinstance(payload, dict) and payload.get("kind") == BASELINE_KIND:
            if payload.get("schema_version", 0) > 1:
                raise ClipbenchError(f"{path}: baseline schema_version {payload['schema_version']} is newer than this clipbench; upgrade")
            return payload["entries"]
    return summarise(read_all([path]))


def compare(current: list[dict], baseline: list[dict], tolerance: float = 0.0, use_ci: bool = False) -> tuple[pd.DataFrame, bool]:
    """A row per (group, task, language) in either side, and whether any main score regressed (or went missing)."""
    now = {(e["group"], e["task"], e["language"]): e for e in summarise(current)}
    before = {(e["group"], e["task"], e["language"]): e for e in baseline}
    rows, failed = [], False
    for key in sorted(set(now) | set(before)):
        new, old = now.get(key), before.get(key)
        row = {"model": key[0], "task": key[1], "lang": key[2],
               "metric": (new or old)["main_score"],
               "baseline": old["value"] if old else None, "current": new["value"] if new else None}
        if old is None:
            status = "new"
        elif new is None:
            status, failed = "MISSING", True
        elif new["main_score"] != old["main_score"]:
            status, failed = "MAIN SCORE CHANGED", True
        else:
            floor = old["value"] - tolerance
            if use_ci and old.get("ci95"):
                floor = min(floor, old["ci95"][0])
            if new["value"] < floor:
                status, failed = "REGRESSION", True
            elif new["value"] > old["value"] + tolerance:
                status = "improved"
            else:
                status = "ok"
        row["delta"] = (row["current"] - row["baseline"]) if old and new else None
        row["status"] = status
        rows.append(row)
    return pd.DataFrame(rows), failed


def render(frame: pd.DataFrame, failed: bool, tolerance: float, use_ci: bool) -> str:
    shown = frame.copy()
    for column in ("baseline", "current"):
        shown[column] = [("-" if v is None or pd.isna(v) else f"{100 * v:.2f}") for v in shown[column]]
    shown["delta"] = [("-" if v is None or pd.isna(v) else f"{100 * v:+.2f}") for v in shown["delta"]]
    rule = f"tolerance {100 * tolerance:.2f} points" + (", or below the baseline's 95% interval" if use_ci else "")
    verdict = "**FAIL**: a main score dropped or went missing" if failed else "**PASS**: no main score dropped"
    table = shown.to_markdown(index=False, tablefmt="github", disable_numparse=True)
    return f"{table}\n\n{verdict} ({rule}; scores in percent)."
