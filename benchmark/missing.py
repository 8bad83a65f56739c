"""One report of every dataset that `run` (before the model loads) or `data check` could not use: which are
missing and which cannot be read, the one command that fetches those the hub has, and where to get the rest by hand.

A run with one unusable dataset stops with that dataset's own one-line message. With several, the error is a short
block: a summary line naming them all, then an indented line per task and the commands that fix it.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from pathlib import Path

from . import data as datasets
from .download import is_missing, manual_route
from .errors import ClipbenchError
from .hub_files import offline
from .specs import TaskSpec
from .tasks import is_registered, suite_registry


@dataclass
class Unusable:
    task: TaskSpec
    error: ClipbenchError
    missing: bool  # its files are not there (else they are there and cannot be read, or do not fit the task)
    languages: list[str] = field(default_factory=list)


def collect(problems: list[Unusable], task: TaskSpec, language: str, error: ClipbenchError, data_root: Path) -> None:
    """Record that `task` in `language` could not be used, and why; one entry per task, its languages gathered."""
    if not add_language(problems, task, language):
        problems.append(Unusable(task, error, is_missing(task, data_root), [language]))


def add_language(problems: list[Unusable], task: TaskSpec, language: str) -> bool:
    """Add `language` to the entry of `task`, if it has one (returned)."""
    for problem in problems:
        if (problem.task.name, problem.task.source_file) == (task.name, task.source_file):
            problem.languages.append(language)
            return True
    return False


def known_missing(problems: list[Unusable], task: TaskSpec) -> bool:
    """Whether `task` is already known to be missing (its other languages need not be tried)."""
    return any(p.missing and (p.task.name, p.task.source_file) == (task.name, task.source_file) for p in problems)


def fetchable(task: TaskSpec) -> bool:
    source = datasets.source(task)
    return bool(source is not None and source.hub)


def task_argument(task: TaskSpec) -> str:
    """How the command line names `task`: its name, or its task file when it is not a registered task."""
    return task.name if is_registered(task.name, task.source_file) else task.source_file


def arguments(tasks: list[TaskSpec]) -> str:
    """`tasks` as command-line arguments; a suite whose every task is among them stands for them."""
    names = list(dict.fromkeys(task_argument(task) for task in tasks))
    suites = suite_registry()
    for name in sorted(suites, key=lambda n: -len(suites.get(n).tasks)):
        members = suites.get(name).tasks
        if len(members) > 1 and set(members) <= set(names):
            at = min(names.index(member) for member in members)  # no member before it: still its place after removal
            names = [n for n in names if n not in members]
            names.insert(at, name)
    return " ".join(shlex.quote(name) for name in names)


def route(task: TaskSpec, data_root: Path, languages: list[str] | None = None) -> str:
    """Where `task`'s files are expected and how to get them (in `languages`: a mirror may serve some only)."""
    source = datasets.source(task)
    where = datasets.resolve_path(source.path, data_root)
    if source.hub:
        cache = " nor in the Hugging Face cache" if source.hub_cache else ""
        why = "HF_HUB_OFFLINE is set" if offline() else f"'clipbench data download {task_argument(task)}' says why"
        served = getattr(datasets.hub_sources(task)[0], "languages", None)
        unserved = [lang for lang in languages or [] if served is not None and lang not in served]
        only = f" (for {', '.join(served)} only; {', '.join(unserved)}: by hand, {manual_route(task)})" if unserved else ""
        return f"not in {where}{cache}; on the hub as {source.hub}{only}, not fetched ({why})"
    return f"not in {where}; by hand: {manual_route(task)}"


def next_steps(missing: list[TaskSpec], where: str = "as each line says", recheck: bool = True) -> list[str]:
    """The command that fetches what the hub has, and what is left to get by hand."""
    hub = [task for task in missing if fetchable(task)]
    manual = [task for task in missing if not fetchable(task)]
    steps = [f"fetch what the hub has: clipbench data download {arguments(hub)}"] if hub else []
    if manual:
        which = "the rest" if hub else ("it" if len(missing) == 1 else "them")
        again = f"; 'clipbench data check {arguments(missing)}' then shows what is found" if recheck else ""
        steps.append(f"get {which} by hand, {where}{again}")
    return steps


def _count(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def report(problems: list[Unusable], data_root: Path) -> ClipbenchError:
    """The error a run stops with: one task's own message, or the block naming every unusable dataset."""
    if len(problems) == 1:
        return problems[0].error
    missing = [p for p in problems if p.missing]
    broken = [p for p in problems if not p.missing]
    heads = []
    if missing:
        heads.append(f"{_count(len(missing), 'dataset')} {'is' if len(missing) == 1 else 'are'} missing: "
                     + ", ".join(p.task.name for p in missing))
    if broken:
        heads.append(f"{_count(len(broken), 'dataset')} cannot be used: " + ", ".join(p.task.name for p in broken))
    lines = ["; ".join(heads) + " (nothing was run)"]
    for problem in problems:
        label = f"{problem.task.name} [{', '.join(problem.languages)}]"
        lines.append(f"  {label}: {route(problem.task, data_root, problem.languages) if problem.missing else problem.error}")
    lines += [f"  {step}" for step in next_steps([p.task for p in missing])]
    return ClipbenchError("\n".join(lines))


def check_summary(rows: list[dict], tasks: list[TaskSpec]) -> list[str]:
    """The lines under `data check`'s table: counts by status, then the next steps for the missing tasks."""
    statuses = [row["status"] for row in rows]
    counts = ", ".join(f"{statuses.count(s)} {s}" for s in dict.fromkeys(statuses))
    lines = [f"{len(rows)} (task, language) pair{'' if len(rows) == 1 else 's'}: {counts}"]
    absent = {row["task"] for row in rows if row["status"] == "MISSING"}
    return lines + next_steps([task for task in tasks if task.name in absent], "as the detail column says", recheck=False)
