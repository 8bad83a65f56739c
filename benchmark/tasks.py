"""Finds and validates tasks/**/*.toml and tasks/suites/*.toml. A malformed file is a loud error."""

from __future__ import annotations

import functools
import re
from pathlib import Path

from pydantic import BaseModel, ValidationError

from .errors import ClipbenchError
from .kinds import METRICS_BY_KIND, unknown_metric
from .paths import data_dir
from .registry import Registry
from .specs import DatasetSpec, SuiteSpec, TaskSpec, describe_validation_error, read_toml


def parse(path: Path, model: type[BaseModel]):
    raw = read_toml(path)
    try:
        return model.model_validate({**raw, "source_file": str(path)})
    except ValidationError as exc:
        raise ClipbenchError(describe_validation_error(path, exc)) from None


def load_task_file(path: Path) -> TaskSpec:
    from .data import validate_dataset

    spec = parse(path, TaskSpec)
    if spec.name != path.stem:
        raise ClipbenchError(f"{path}: field 'name' is '{spec.name}' but the file is named '{path.stem}.toml'; make them equal")
    problem = unknown_metric(spec.kind, spec.metrics)
    if problem:
        raise ClipbenchError(f"{path}: field 'metrics': {problem}")
    validate_dataset(spec)
    return spec


@functools.cache
def task_registry(root: Path | None = None) -> Registry[TaskSpec]:
    root = root or data_dir("tasks")
    registry: Registry[TaskSpec] = Registry("task")
    for path in sorted(root.rglob("*.toml")):
        if path.parent.name == "suites":
            continue
        spec = load_task_file(path)
        registry.register(spec.name, spec, origin=str(path))
    for _, spec in registry.items():
        for lang, target in spec.language_tasks.items():
            other = registry.get(target) if target in registry else None
            if other is None or lang not in other.languages or other.kind != spec.kind:
                problem = (registry.unknown_message(target) if other is None else
                           f"task '{target}' has no {lang} version" if lang not in other.languages else
                           f"task '{target}' is {other.kind}, not {spec.kind}")
                raise ClipbenchError(f"{spec.source_file}: field 'language_tasks': {problem}")
    return registry


def holding(task: TaskSpec, language: str) -> TaskSpec:
    """The task whose data serves `task` in `language`: itself, or the task its `language_tasks` names."""
    return task_registry().get(task.language_tasks[language]) if language in task.language_tasks else task


@functools.cache
def suite_registry(root: Path | None = None) -> Registry[SuiteSpec]:
    root = root or data_dir("tasks")
    tasks = task_registry(root)
    registry: Registry[SuiteSpec] = Registry("suite")
    for path in sorted((root / "suites").glob("*.toml")):
        suite = parse(path, SuiteSpec)
        for member in suite.tasks:
            if member not in tasks:
                raise ClipbenchError(f"{path}: field 'tasks': {tasks.unknown_message(member)}")
        registry.register(suite.name, suite, origin=str(path))
    return registry


def task_from_directory(root: Path, split: str = "test") -> TaskSpec:
    """The task a local directory in CLIP_benchmark's webdataset layout describes."""
    from .data.wds import describe_directory

    root = root.resolve()
    raw_type, languages = describe_directory(root, split)
    kind = "retrieval" if raw_type == "retrieval" else "classification"
    metrics = ["map_11point"] if raw_type == "multilabel" else [m for m in METRICS_BY_KIND[kind] if m not in ("map_11point", "roc_auc")]

    name = re.sub(r"[^a-z0-9._-]+", "-", root.name.lower()).strip("-.") or "local"
    return TaskSpec(
        name=name,
        kind=kind,
        description=f"local directory {root}",
        languages=languages,
        split=split,
        metrics=metrics,
        main_score=metrics[0] if kind == "classification" else "mean_recall",
        dataset=DatasetSpec(format="wds", path=str(root)),
        source_file=str(root),
    )


def resolve(names: list[str]) -> list[TaskSpec]:
    """Task names, suite names or local CLIP_benchmark-layout directories, in order, without repeats."""
    tasks, suites = task_registry(), suite_registry()
    out: list[TaskSpec] = []
    for name in names:
        if name in suites:
            out.extend(tasks.get(member) for member in suites.get(name).tasks)
        elif name in tasks:
            out.append(tasks.get(name))
        elif Path(name).expanduser().is_dir() or "/" in name or name.startswith("."):
            out.append(task_from_directory(Path(name).expanduser()))
        else:
            raise ClipbenchError(tasks.unknown_message(name), exit_code=2)
    seen, unique = set(), []
    for spec in out:
        key = spec.source_file or spec.name
        if key not in seen:
            seen.add(key)
            unique.append(spec)
    return unique
