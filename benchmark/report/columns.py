"""What a table or a figure shows: its columns (task × language × metric, and suite averages) and the cell of
a model group in each. `clipbench table` and `clipbench plot` both choose their columns here.

A cell is the mean over the members (checkpoints or seeds) of a group, with their std when there are several;
a suite's cell is the plain mean of its members' main scores.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

from ..errors import ClipbenchError
from ..results import Key, Result
from .reference import KNOWN_METRICS, Column

# Std over the checkpoints (training runs) of a group. CAPIVARA's README says "we report the average and standard
# deviation for 3 runs" without saying which std; its repository (hiaac-nlp/CAPIVARA) does not hold the
# aggregation: clip_pt/src/evaluate/zero_shot_elevater.py and zero_shot_retrieval*.py append one line per run to a
# text file and the recipes/*.sh only launch runs. With no code to copy we use numpy's default, ddof=0
# (population std, what `np.std(values)` gives). Change it here and nowhere else.
STD_DDOF = 0

Grouped = dict[Key, list[Result]]  # benchmark.comparable.collect


@dataclass
class Stat:
    """One cell: mean over the members (checkpoints/seeds) of a group, std when there are several, the bootstrap
    95% interval when there is one member that carries it. Fractions."""

    mean: float
    std: float | None = None
    n: int = 1
    ci95: tuple[float, float] | None = None
    members: dict = field(default_factory=dict)


def stat(members: list[Result], metric: str) -> Stat | None:
    values = {r.member: float(r.metrics[metric]) for r in members if r.metrics.get(metric) is not None}
    if not values:
        return None
    array = np.array(list(values.values()))
    ci = members[0].interval(metric) if len(values) == 1 else None
    return Stat(float(array.mean()), float(array.std(ddof=STD_DDOF)) if len(array) > 1 else None, len(array),
                tuple(ci) if ci else None, values)


def suite_stat(grouped: Grouped, group: str, tasks: list[str], language: str) -> Stat | None:
    """The plain mean of the members' main scores; per checkpoint (then mean ± std) when every member task
    has the same checkpoints, else the mean of the task means."""
    per_task = []
    for task in tasks:
        members = grouped.get(Key(group, task, language))
        cell = stat(members, members[0].main_score) if members else None
        if cell is None:
            return None
        per_task.append(cell)
    keys = set(per_task[0].members)
    if len(keys) > 1 and all(set(c.members) == keys for c in per_task):
        averages = np.array([np.mean([c.members[k] for c in per_task]) for k in sorted(keys, key=str)])
        return Stat(float(averages.mean()), float(averages.std(ddof=STD_DDOF)), len(averages))
    return Stat(float(np.mean([c.mean for c in per_task])), None, min(c.n for c in per_task))


def cell(grouped: Grouped, group: str, column: Column) -> Stat | None:
    """The cell of a run group in a (resolved) column."""
    if column.suite:
        from ..tasks import suite_registry

        return suite_stat(grouped, group, suite_registry().get(column.suite).tasks, column.language)
    members = grouped.get(Key(group, column.task, column.language))
    return stat(members, column.metric) if members else None


def _main_metrics(task: str, grouped: Grouped) -> list[str]:
    """The main scores the results of `task` name, in the order of the groups: one, or several where protocols
    name the main score differently (map_11point, and CLIP_benchmark's mean_average_precision under the
    clip-benchmark protocol): each is then a column of its own. The task file's when no result has one."""
    found = [r.main_score for key, members in sorted(grouped.items()) if key.task == task for r in members]
    if found:
        return list(dict.fromkeys(found))
    from ..tasks import task_registry

    return [task_registry().get(task).main_score]


def choose_columns(grouped: Grouped, metrics="main", published=()) -> list[Column]:
    """The columns that some result (or published value) has, in order: a column per task and language (labelled
    task/lang when a task has several) and, for `metrics="main"`, each task's main score and then an "Average"
    per suite and language that some group has complete; for a list of metric names, task × metric (the label
    is the metric, the task its header group)."""
    wanted = ["main"] if metrics == "main" else list(metrics)
    unknown = [m for m in wanted if m != "main" and m not in KNOWN_METRICS]
    if unknown:
        raise ClipbenchError(f"unknown metric {', '.join(unknown)}; use main or one of {', '.join(sorted(KNOWN_METRICS))}", exit_code=2)
    pairs = sorted({(key.task, key.language) for key in grouped} or {(p.task, p.language) for p in published if p.task})
    languages = defaultdict(set)
    for task, lang in pairs:
        languages[task].add(lang)
    present = {(key.task, key.language, m) for key, members in grouped.items() for r in members for m in r.metrics}
    present |= {p.column for p in published}
    columns = []
    for task, lang in pairs:
        label = f"{task}/{lang}" if len(languages[task]) > 1 else task
        for name in wanted:
            chosen = _main_metrics(task, grouped) if name == "main" else [name]
            for metric in chosen:
                shown = label if len(chosen) == 1 else f"{label} ({metric})"
                if (task, lang, metric) in present and all(c.key != (task, lang, metric) for c in columns):
                    columns.append(Column(shown if metrics == "main" else metric, task, None, lang, metric,
                                          "" if metrics == "main" else label))
    if "main" in wanted:
        from ..tasks import suite_registry

        groups = {key.group for key in grouped}
        suites = []
        for name, suite in suite_registry().items():
            for lang in sorted({lang for _, lang in pairs}):
                if any(suite_stat(grouped, g, suite.tasks, lang) for g in groups) or \
                        any(p.column == (f"suite:{name}", lang, "main") for p in published if not grouped):
                    suites.append((name, lang))
        for name, lang in suites:
            label = "Average" if len(suites) == 1 else f"Average ({name}/{lang})"
            columns.append(Column(label, None, name, lang, "main", "" if metrics == "main" else label))
    if not columns:
        raise ClipbenchError(f"no result has the metric(s) {', '.join(wanted)}", exit_code=2)
    return columns
