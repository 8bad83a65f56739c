"""Finds and validates task files: the bundled tasks/**/*.toml and tasks/suites/*.toml, those $CLIPBENCH_TASKS
names, and those given to --task as paths. All go through one loader; a malformed file is a loud error."""

from __future__ import annotations

import difflib
import functools
import os
import re
from pathlib import Path

from pydantic import BaseModel, ValidationError

from .errors import ClipbenchError
from . import webdatasets
from .kinds import METRICS_BY_KIND, unknown_metric
from .paths import data_dir
from .registry import Registry
from .specs import DatasetSpec, SuiteSpec, TaskSpec, describe_validation_error, read_toml

USER_TASKS = "CLIPBENCH_TASKS"


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
    if spec.name in webdatasets.RESERVED_STEMS:  # its results would be written where the webdataset's are
        raise ClipbenchError(f"{path}: the name '{spec.name}' is reserved for the results of "
                             f"{webdatasets.RESERVED_STEMS[spec.name]}; give your task another name (its 'name' field and its file name)")
    problem = unknown_metric(spec.kind, spec.metrics)
    if problem:
        field = "kind" if spec.kind not in METRICS_BY_KIND else "metrics"
        raise ClipbenchError(f"{path}: field '{field}': {problem}")
    validate_dataset(spec)
    return spec


def task_files_in(folder: Path) -> list[Path]:
    """The task files of a folder laid out like the bundled tasks/: every *.toml below it, except in suites/."""
    return [path for path in sorted(folder.rglob("*.toml")) if path.parent.name != "suites"]


def user_task_paths(value: str) -> list[Path]:
    """The task files and folders that $CLIPBENCH_TASKS names (separated by os.pathsep)."""
    paths = []
    for entry in value.split(os.pathsep):
        if not entry.strip():
            continue
        path = Path(entry).expanduser()
        if not path.exists():
            raise ClipbenchError(f"{USER_TASKS} names {path}, which does not exist; fix or unset {USER_TASKS}")
        if path.is_file() and path.suffix != ".toml":
            raise ClipbenchError(f"{USER_TASKS} names {path}, which is not a task file (*.toml) nor a folder of them; "
                                 f"fix or unset {USER_TASKS}")
        paths.append(path)
    return paths


def _same_file(a: str | Path, b: str | Path) -> bool:
    return bool(a) and bool(b) and Path(a).resolve() == Path(b).resolve()


def _clash(path: Path, name: str, origin: str) -> ClipbenchError:
    return ClipbenchError(f"{path}: task '{name}' is already defined in {origin or 'clipbench'}; give yours "
                          "another name (its 'name' field and its file name)")


def check_language_tasks(spec: TaskSpec, registry: Registry[TaskSpec]) -> None:
    for lang, target in spec.language_tasks.items():
        other = registry.get(target) if target in registry else None
        if other is None or lang not in other.languages or other.kind != spec.kind:
            problem = (registry.unknown_message(target) if other is None else
                       f"task '{target}' has no {lang} version" if lang not in other.languages else
                       f"task '{target}' is {other.kind}, not {spec.kind}")
            raise ClipbenchError(f"{spec.source_file}: field 'language_tasks': {problem}")


def task_registry(root: Path | None = None) -> Registry[TaskSpec]:
    """The bundled tasks (or those under `root`) and those $CLIPBENCH_TASKS names."""
    return _task_registry(root or data_dir("tasks"), os.environ.get(USER_TASKS, ""))


@functools.cache
def _task_registry(root: Path, user: str) -> Registry[TaskSpec]:
    registry: Registry[TaskSpec] = Registry("task")
    for path in task_files_in(root):
        spec = load_task_file(path)
        registry.register(spec.name, spec, origin=str(path))
    for entry in user_task_paths(user):
        for path in task_files_in(entry) if entry.is_dir() else [entry]:
            spec = load_task_file(path)
            if spec.name in registry:
                if _same_file(registry.origin(spec.name), path):  # named twice, e.g. as a file and in its folder
                    continue
                raise _clash(path, spec.name, registry.origin(spec.name))
            registry.register(spec.name, spec, origin=str(path))
    for _, spec in registry.items():
        check_language_tasks(spec, registry)
    return registry


def is_registered(name: str, task_file: str | None) -> bool:
    """Whether the task `name` read from `task_file` is the registered task of that name, which its name alone
    identifies (a dataset folder or a task file given by path is identified by its location too)."""
    if not task_file:
        return True
    registry = task_registry()
    return name in registry and Path(registry.get(name).source_file).resolve() == Path(task_file).resolve()


def holding(task: TaskSpec, language: str) -> TaskSpec:
    """The task whose data serves `task` in `language`: itself, or the task its `language_tasks` names."""
    return task_registry().get(task.language_tasks[language]) if language in task.language_tasks else task


def suite_registry(root: Path | None = None) -> Registry[SuiteSpec]:
    """The bundled suites (tasks/suites/*.toml) and those in a suites/ folder of a $CLIPBENCH_TASKS folder."""
    return _suite_registry(root or data_dir("tasks"), os.environ.get(USER_TASKS, ""))


@functools.cache
def _suite_registry(root: Path, user: str) -> Registry[SuiteSpec]:
    tasks = _task_registry(root, user)
    registry: Registry[SuiteSpec] = Registry("suite")
    for folder in [root] + [entry for entry in user_task_paths(user) if entry.is_dir()]:
        for path in sorted((folder / "suites").glob("*.toml")):
            suite = parse(path, SuiteSpec)
            for member in suite.tasks:
                if member not in tasks:
                    raise ClipbenchError(f"{path}: field 'tasks': {tasks.unknown_message(member)}")
            if suite.name in registry and _same_file(registry.origin(suite.name), path):
                continue
            registry.register(suite.name, suite, origin=str(path))
    return registry


def task_from_directory(root: Path, split: str = "test") -> TaskSpec:
    """The task a local directory in CLIP_benchmark's webdataset layout describes."""
    from .data.wds import describe_directory

    root = root.resolve()
    raw_type, languages = describe_directory(root, split)
    kind, metrics, main_score = webdatasets.layout_kind(raw_type)

    name = re.sub(r"[^a-z0-9._-]+", "-", root.name.lower()).strip("-.") or "local"
    return TaskSpec(
        name=name,
        kind=kind,
        description=f"local directory {root}",
        languages=languages,
        split=split,
        metrics=metrics,
        main_score=main_score,
        dataset=DatasetSpec(format="wds", path=str(root)),
        source_file=str(root),
    )


def task_from_file(path: Path, tasks: Registry[TaskSpec]) -> TaskSpec:
    """A task file given to --task, checked as the bundled ones are; it may not reuse a registered name."""
    if not path.exists():
        raise ClipbenchError(f"task file {path} does not exist; check the --task path", exit_code=2)
    if path.suffix != ".toml":
        raise ClipbenchError(f"{path} is not a task file (*.toml); --task takes a task or suite name, a task file, "
                             "a folder of task files or a CLIP_benchmark dataset folder", exit_code=2)
    spec = load_task_file(path)
    if spec.name in tasks:
        if _same_file(tasks.origin(spec.name), path):  # also in $CLIPBENCH_TASKS: one task, not two
            return tasks.get(spec.name)
        raise _clash(path, spec.name, tasks.origin(spec.name))
    check_language_tasks(spec, tasks)
    return spec


def unknown_task_message(name: str, tasks: Registry[TaskSpec], suites: Registry[SuiteSpec]) -> str:
    close = difflib.get_close_matches(name, list(tasks) + list(suites), n=3, cutoff=0.5)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    return (f"Unknown task '{name}': not a task, a suite, a task file (.toml) or a dataset folder.{hint} "
            "See 'clipbench list tasks' and 'clipbench list suites'.")


def resolve(names: list[str]) -> list[TaskSpec]:
    """Task names, suite names, task files, folders of task files, CLIP_benchmark's webdataset names
    (`wds/...`, benchmark.webdatasets) or local CLIP_benchmark-layout directories, in order, without repeats."""
    tasks, suites = task_registry(), suite_registry()
    out: list[TaskSpec] = []
    for name in names:
        path = Path(name).expanduser()
        if name in suites:
            out.extend(tasks.get(member) for member in suites.get(name).tasks)
        elif name in tasks:
            out.append(tasks.get(name))
        elif path.suffix == ".toml" or path.is_file():
            out.append(task_from_file(path, tasks))
        elif path.is_dir() and task_files_in(path):
            out.extend(task_from_file(file, tasks) for file in task_files_in(path))
        elif webdatasets.is_webdataset_name(name):  # CLIP_benchmark's names; a local folder is ./wds/...
            out.append(webdatasets.task(name))
        elif path.is_dir() or "/" in name or name.startswith("."):
            out.append(task_from_directory(path))
        else:
            raise ClipbenchError(unknown_task_message(name, tasks, suites), exit_code=2)
    seen, unique = set(), []
    for spec in out:
        key = spec.source_file or spec.name
        if key not in seen:
            seen.add(key)
            unique.append(spec)
    return unique
