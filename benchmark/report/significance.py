"""Is a difference between two models on one dataset real? The paired bootstrap over stored per-query outcomes
(`clipbench run --save-queries`), behind `clipbench compare A B --paired` and `clipbench table --significance`.

The test. Both results must come from the same queries (same dataset fingerprint, prompts, protocol, --limit;
benchmark.report.comparable's rule), so query i of A and query i of B are the same image or caption. Each draw
resamples the queries with replacement, the SAME indices for A and B (each query set of the kind drawn on its
own, in the kind's order, as `benchmark.kinds.bootstrap` does, the gallery held fixed), recomputes each metric
of both through its kind's metric record (so balanced accuracy, mean recalls and other metrics that are not
means over queries are recomputed, not averaged), and keeps the difference d* = B* - A*. Pairing removes what
the two models share (the easy and the hard queries), which is what makes a small difference detectable.

- 95% interval: the 2.5th and 97.5th percentiles of d* (the percentile interval, as the run's --bootstrap).
- p-value, two-sided: twice the share of d* on the far side of zero, a draw at exactly zero counting half to
  each side, capped at 1: p = min(1, 2 min(P*(d* < 0) + P*(d* = 0)/2, P*(d* > 0) + P*(d* = 0)/2)).
  This is the p-value that inverts the percentile interval (the level at which the interval just reaches
  zero; the duality of tests and intervals, Efron & Tibshirani, "An Introduction to the Bootstrap", 1993,
  ch. 16), so "significant at 0.05" and "the 95% interval leaves out zero" agree (up to draws at exactly zero
  and the interpolation between percentiles), and one set of draws gives both. When the distribution of d* is
  symmetric about the observed d it equals the null-shifted p-value, 2 P*(d* - d >= |d|), that Hall & Wilson
  recommend ("Two guidelines for bootstrap hypothesis testing", Biometrics 47, 1991) and that the paired
  bootstrap tests of NLP evaluation use (Koehn, EMNLP 2004; Berg-Kirkpatrick et al., EMNLP 2012, one-sided).
  We chose it over a paired sign-flip (permutation) test because that tests the stronger null "A and B are
  exchangeable on every query", not "the metric is equal", and would need a second resampling scheme for the
  interval. Calibration (about 5%
  false positives at 0.05 when the true difference is zero) and power are checked on synthetic data with a
  known answer in tests/test_significance.py. With N draws, p has a resolution of about 1/N: a p of 0 (no draw
  on the far side) is shown as "< 2/N".
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import ClipbenchError
from ..kinds import KINDS, Queries
from ..kinds.stored import load as load_queries
from ..results import Key, Result, read_located
from .comparable import ASPECTS, _short
from .reference import KNOWN_METRICS, Column

DRAWS, SEED, ALPHA = 1000, 0, 0.05
DAGGER = "†"


# ------------------------------------------------------------------------------------------- the statistic

@dataclass(frozen=True)
class Paired:
    """One metric of A and B on the same queries; fractions (delta and interval of B - A)."""

    metric: str
    a: float
    b: float
    delta: float
    ci95: tuple[float, float]
    p: float
    draws: int
    seed: int

    def significant(self, alpha: float) -> bool:
        return bool(self.p < alpha)


def p_value(deltas: np.ndarray) -> float:
    """Two-sided p-value of "B - A = 0" from the paired bootstrap differences (see the module docstring)."""
    deltas = np.asarray(deltas, dtype=float)
    if deltas.size == 0 or np.isnan(deltas).any():
        return float("nan")
    below, above = float(np.mean(deltas < 0)), float(np.mean(deltas > 0))
    tied = 1.0 - below - above
    return min(1.0, 2 * min(below + tied / 2, above + tied / 2))


def _take(queries: Queries, drawn: dict[str, np.ndarray]) -> Queries:
    return Queries(queries.metrics, queries.sizes,
                   {name: (query_set, rows[drawn[query_set]]) for name, (query_set, rows) in queries.columns.items()})


def paired_bootstrap(a: Queries, b: Queries, draws: int = DRAWS, seed: int = SEED) -> dict[str, Paired]:
    """Every metric of `a` (and `b`, the same metrics on the same queries) with its paired bootstrap interval
    and p-value for B - A."""
    names = [m.name for m in a.metrics]
    if a.sizes != b.sizes or names != [m.name for m in b.metrics]:
        raise ValueError(f"not the same queries or metrics: {a.sizes} {names} vs {b.sizes} {[m.name for m in b.metrics]}")
    rng = np.random.default_rng(seed)
    deltas = {name: np.empty(draws) for name in names}
    for i in range(draws):
        drawn = {query_set: rng.integers(0, n, n) for query_set, n in a.sizes.items()}
        of_a, of_b = _take(a, drawn).values(), _take(b, drawn).values()
        for name in names:
            deltas[name][i] = of_b[name] - of_a[name]
    value_a, value_b = a.values(), b.values()
    out = {}
    for name in names:
        low, high = (float(v) for v in np.percentile(deltas[name], [2.5, 97.5]))
        out[name] = Paired(name, value_a[name], value_b[name], value_b[name] - value_a[name], (low, high),
                           p_value(deltas[name]), draws, seed)
    return out


# ------------------------------------------------------------------------------------------- the inputs

def _note(line: str) -> None:
    print(line, file=sys.stderr)


def check_options(draws: int, seed: int, alpha: float) -> None:
    if draws < 100:
        raise ClipbenchError(f"--draws needs at least 100 draws (1000 is usual), not {draws}", exit_code=2)
    if seed < 0:
        raise ClipbenchError(f"--seed must be 0 or more, not {seed}", exit_code=2)
    if not 0 < alpha < 1:
        raise ClipbenchError(f"--alpha must be between 0 and 1 (0.05 is usual), not {alpha}", exit_code=2)


def check_alike(a: tuple[Path, Result], b: tuple[Path, Result]) -> None:
    """Refuses two results that were not evaluated on the same queries alike (benchmark.report.comparable)."""
    (path_a, result_a), (path_b, result_b) = a, b
    for what, _, get in ASPECTS:
        if get(result_a) != get(result_b):
            raise ClipbenchError(
                f"cannot pair {path_a} and {path_b}: their {what} differ ({_short(get(result_a))} vs "
                f"{_short(get(result_b))}), so their queries are not the same; pair results evaluated on the same "
                "data with the same prompts, protocol and --limit", exit_code=2)


class Tester:
    """Paired tests between located results, each queries file read once per set of metrics."""

    def __init__(self, draws: int = DRAWS, seed: int = SEED):
        self.draws, self.seed, self._loaded = draws, seed, {}

    def queries(self, located: tuple[Path, Result], names: tuple[str, ...]) -> Queries:
        path, result = located
        if (path, names) not in self._loaded:
            self._loaded[(path, names)] = load_queries(path, result, KINDS[result.kind], list(names))
        return self._loaded[(path, names)]

    def test(self, a: tuple[Path, Result], b: tuple[Path, Result], names: tuple[str, ...]) -> dict[str, Paired]:
        check_alike(a, b)
        queries_a, queries_b = self.queries(a, names), self.queries(b, names)
        if queries_a.sizes != queries_b.sizes:
            raise ClipbenchError(f"cannot pair {a[0]} and {b[0]}: their queries differ in number ({queries_a.sizes} vs "
                                 f"{queries_b.sizes}); rerun both with --save-queries on the same data", exit_code=2)
        return paired_bootstrap(queries_a, queries_b, self.draws, self.seed)


# ------------------------------------------------------------------------------------- compare A B --paired

def _match_key(result: Result) -> tuple:
    """What pairs a result of A with one of B; the rest must agree (`check_alike`: --limit, data, prompts, protocol)."""
    return (result.task, result.language, result.variant or "")


def _describe(keys) -> str:
    return ", ".join(f"{task} [{language}]" + (f" ({variant})" if variant else "") for task, language, variant in sorted(keys)) or "nothing"


def _by_key(located: list[tuple[Path, Result]], side: str, given: list[Path]) -> dict[tuple, tuple[Path, Result]]:
    keyed: dict[tuple, tuple[Path, Result]] = {}
    for path, result in located:
        key = _match_key(result)
        if key in keyed:
            raise ClipbenchError(f"{side} ({', '.join(map(str, given))}) holds two results of {result.task} "
                                 f"[{result.language}]: {keyed[key][0]} and {path}; pass one model's results per side",
                                 exit_code=2)
        keyed[key] = (path, result)
    return keyed


def _label(result: Result) -> str:
    checkpoint = result.model.checkpoint_name
    return result.group + (f"/{checkpoint}" if checkpoint and checkpoint != result.group else "")


def compare_paired(a_paths: list[Path], b_paths: list[Path], metrics="main", draws: int = DRAWS, seed: int = SEED,
                   alpha: float = ALPHA, note=_note) -> pd.DataFrame:
    """A row per (task, language, metric) that A and B share; the numbers are fractions."""
    check_options(draws, seed, alpha)
    wanted = ["main"] if metrics == "main" else list(metrics)
    unknown = [m for m in wanted if m != "main" and m not in KNOWN_METRICS]
    if unknown:
        raise ClipbenchError(f"unknown metric {', '.join(unknown)}; use main or one of {', '.join(sorted(KNOWN_METRICS))}", exit_code=2)
    side_a, side_b = _by_key(read_located(a_paths, note), "A", a_paths), _by_key(read_located(b_paths, note), "B", b_paths)
    notes = []  # said once the comparison stands: an error comes alone
    for key in sorted(set(side_a) ^ set(side_b), key=str):
        path, result = side_a.get(key) or side_b.get(key)
        notes.append(f"note: {path}: no result of {result.task} [{result.language}] on the other side; not compared")
    shared = sorted(set(side_a) & set(side_b), key=str)
    if not shared:
        raise ClipbenchError(f"A ({', '.join(map(str, a_paths))}: {_describe(side_a)}) and B ({', '.join(map(str, b_paths))}: "
                             f"{_describe(side_b)}) share no task and language; pass results of the same tasks", exit_code=2)
    tester, rows = Tester(draws, seed), []
    for key in shared:
        (path_a, result_a), (path_b, result_b) = side_a[key], side_b[key]
        names = tuple(dict.fromkeys(result_a.main_score if m == "main" else m for m in wanted))
        names = tuple(m for m in names if result_a.metrics.get(m) is not None and result_b.metrics.get(m) is not None)
        if not names:
            notes.append(f"note: {path_a} and {path_b} share none of the metrics {', '.join(wanted)}; not compared")
            continue
        for name, found in tester.test(side_a[key], side_b[key], names).items():
            rows.append({"task": result_a.task, "lang": result_a.language, "variant": result_a.variant, "metric": name,
                         "A": found.a, "B": found.b, "B - A": found.delta, "ci_low": found.ci95[0],
                         "ci_high": found.ci95[1], "p": found.p, "significant": found.significant(alpha),
                         "model_a": _label(result_a), "model_b": _label(result_b)})
    if not rows:
        raise ClipbenchError(f"no metric of {', '.join(wanted)} is in both A and B; choose another --metric", exit_code=2)
    for line in notes:
        note(line)
    return pd.DataFrame(rows)


def _points(value: float, sign: bool = False) -> str:
    return "-" if pd.isna(value) else f"{100 * value:{'+' if sign else ''}.2f}"


def show_p(p: float, draws: int) -> str:
    if pd.isna(p):
        return "-"
    return f"< {2 / draws:.2g}" if p == 0 else f"{p:.3f}"


def render_paired(frame: pd.DataFrame, draws: int, seed: int, alpha: float) -> str:
    shown = pd.DataFrame({
        "task": frame["task"], "lang": frame["lang"],
        **({"variant": frame["variant"].fillna("-")} if frame["variant"].notna().any() else {}),
        "metric": frame["metric"], "A": frame["A"].map(_points), "B": frame["B"].map(_points),
        "B − A": frame["B - A"].map(lambda v: _points(v, True)),
        "95% CI": [f"[{_points(lo, True)}, {_points(hi, True)}]" for lo, hi in zip(frame["ci_low"], frame["ci_high"])],
        "p": frame["p"].map(lambda p: show_p(p, draws)),
        f"p < {alpha:g}": ["-" if pd.isna(p) else "yes" if s else "no" for p, s in zip(frame["p"], frame["significant"])],
    })
    models = [f"A = {', '.join(dict.fromkeys(frame['model_a']))}", f"B = {', '.join(dict.fromkeys(frame['model_b']))}"]
    table = shown.to_markdown(index=False, tablefmt="github", disable_numparse=True)
    return (f"{models[0]}; {models[1]}\n\n{table}\n\nPaired bootstrap: the same resampled queries for A and B, {draws} "
            f"draws, seed {seed}; B − A and its 95% interval in points; p two-sided; scores in percent.")


# ------------------------------------------------------------------------------------- table --significance

def significance_marker(located: list[tuple[Path, Result]], baseline: str, draws: int = DRAWS, seed: int = SEED,
                        alpha: float = ALPHA):
    """For `benchmark.report.table.build_table(mark=..., notes=...)`: (group, column) -> "†" when that group's
    cell differs from `baseline`'s at p < alpha, else "", and the note that explains the dagger. Task columns only (a suite average
    is not one set of queries); one result per group and cell (checkpoints are not pooled)."""
    check_options(draws, seed, alpha)
    by_key: dict[Key, list[tuple[Path, Result]]] = {}
    for path, result in located:
        by_key.setdefault(result.key, []).append((path, result))
    groups = sorted({key.group for key in by_key})
    if baseline not in groups:
        raise ClipbenchError(f"--significance {baseline}: no results of that group (groups: {', '.join(groups)}); "
                             "name one of them", exit_code=2)
    tester = Tester(draws, seed)

    def only(group: str, column: Column) -> tuple[Path, Result] | None:
        members = by_key.get(Key(group, column.task, column.language), [])
        members = [m for m in members if m[1].metrics.get(column.metric) is not None]
        if len(members) > 1:
            raise ClipbenchError(
                f"--significance compares one result with one, and group '{group}' has {len(members)} on {column.task} "
                f"[{column.language}] ({', '.join(str(path) for path, _ in members)}); pass one checkpoint per group "
                "(the paired test does not pool checkpoints)", exit_code=2)
        return members[0] if members else None

    def mark(group: str | None, column: Column) -> str:
        if group is None or group == baseline or not column.task:
            return ""
        theirs = only(baseline, column)
        ours = only(group, column) if theirs is not None else None
        if ours is None:
            return ""
        return DAGGER if tester.test(theirs, ours, (column.metric,))[column.metric].significant(alpha) else ""

    return mark, f"{DAGGER} differs from {baseline} at p < {alpha:g} (paired bootstrap, {draws} draws, seed {seed})"
