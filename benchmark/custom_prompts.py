"""`run --templates FILE` and `--classnames FILE`: one run's own prompts for its classification tasks, in place of
the task's (or its protocol's, or its dataset's), as CLIP_benchmark's `--custom_template_file` and
`--custom_classname_file` (LAION-AI/CLIP_benchmark @ b4b6a33c8dc01fe44acf24f24f71ac7585d52571,
clip_benchmark/datasets/builder.py `build_dataset`, and clip_benchmark/metrics/zeroshot_classification.py
`zero_shot_classifier` for per-class prompts).

Files, by suffix:
- `.txt` (any other suffix): one template (with `{c}` for the class name) or one class name per line; lines are
  stripped, blank lines skipped, as CLIP_benchmark reads a webdataset's classnames.txt.
- `.json`: a list of templates or of class names; or an object keyed by task name, as CLIP_benchmark's files are
  (`{"cifar10": [...]}`; a `wds/...` task also finds its CLIP_benchmark name without `wds/`, e.g. `vtab/cifar10`),
  whose value is such a list; or, for templates, per-class prompts as CuPL publishes them
  (`{"class name": ["prompt", ...], ...}`, directly or under the task's key, as CLIP_benchmark's cupl_prompts.json).
  Per-class prompts are complete sentences, used as written; each class's classifier row averages its own prompts.
  JSON strings are used as written (not stripped), as CLIP_benchmark uses them.

Unlike CLIP_benchmark, a task missing from a keyed file is an error, not a fall-back to the `imagenet1k` entry.
The result records each file's path and sha256 (`prompts.overrides`), its prompts' sha256 covers the prompts used,
and its file name carries a tag of the files, so a run with other prompts never replaces one with the task's own.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Union

from .errors import ClipbenchError
from .prompts import Prompts
from .text import decode

TEMPLATES, CLASSNAMES = "--templates", "--classnames"
Lines = list[tuple[int, str]]  # (line number in the file, or position in a JSON list; the text)


@dataclass(frozen=True)
class CustomFile:
    option: str  # --templates or --classnames
    path: Path
    sha256: str  # of the file's bytes
    content: Union[Lines, dict]  # a list (numbered) or a JSON object

    @property
    def unit(self) -> str:
        return "item" if self.path.suffix.lower() == ".json" else "line"

    def where(self, number: int) -> str:
        return f"{self.path} {self.unit} {number}"


def _numbered(values: list, file: Path, option: str) -> Lines:
    if not all(isinstance(value, str) for value in values):
        first = next(i for i, value in enumerate(values, 1) if not isinstance(value, str))
        raise ClipbenchError(f"{file} item {first} is {json.dumps(values[first - 1])[:40]}, not a string; {option} takes a "
                             "list of strings", exit_code=2)
    return list(enumerate(values, 1))


def _check_templates(file: CustomFile, lines: Lines) -> Lines:
    for number, template in lines:
        if "{c}" not in template and "{}" not in template:
            raise ClipbenchError(f"{file.where(number)}: template '{template}' has no {{c}} for the class name; write {{c}} "
                                 f"where the class name goes ({file.option} {file.path})", exit_code=2)
    return lines


def read_file(path: Path, option: str) -> CustomFile:
    path = Path(path).expanduser()
    if not path.is_file():
        raise ClipbenchError(f"{option} {path}: no such file; pass a .txt file (one per line) or a .json file", exit_code=2)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ClipbenchError(f"{option} {path}: cannot be read ({exc.strerror or exc}); check the path and its permissions",
                             exit_code=2) from None
    try:
        text = decode(raw, f"{option} {path}")
    except ClipbenchError as exc:  # bad input: exit 2
        raise ClipbenchError(str(exc), exit_code=2) from None
    if path.suffix.lower() == ".json":
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ClipbenchError(f"{path} line {exc.lineno}: not valid JSON ({exc.msg}); fix it ({option})", exit_code=2) from None
        if isinstance(value, list):
            content: Union[Lines, dict] = _numbered(value, path, option)
        elif isinstance(value, dict):
            content = value
        else:
            raise ClipbenchError(f"{path}: a {type(value).__name__} is not a list or an object; {option} takes a list of "
                                 "strings, or an object keyed by task (or, for templates, by class name)", exit_code=2)
    else:
        content = [(number, line.strip()) for number, line in enumerate(text.splitlines(), 1) if line.strip()]
    if not content:
        raise ClipbenchError(f"{path} is empty; {option} needs at least one {'template' if option == TEMPLATES else 'class name'}",
                             exit_code=2)
    file = CustomFile(option, path.resolve(), hashlib.sha256(raw).hexdigest(), content)
    if option == TEMPLATES and isinstance(content, list):
        _check_templates(file, content)
    return file


def tag_of(record: dict) -> str:
    """A short name for the files a result's prompts came from (`prompts.overrides`), for its file name."""
    blob = "|".join(f"{option}:{record[option]['sha256']}" for option in sorted(record))
    return hashlib.sha256(blob.encode()).hexdigest()[:8]


def _task_keys(task: str) -> list[str]:
    """The keys a task is found under in a keyed file: its name, and a `wds/` task's CLIP_benchmark name without
    `wds/` (builder.py `keys_to_lookup`)."""
    return [task] + ([task[len("wds/"):]] if task.startswith("wds/") else [])


def _keyed(file: CustomFile, task: str, what: str):
    """The value a keyed JSON object holds for `task`."""
    for key in _task_keys(task):
        if key in file.content:
            return key, file.content[key]
    keys = ", ".join(list(file.content)[:5]) + (", ..." if len(file.content) > 5 else "")
    raise ClipbenchError(f"{file.path}: no entry for task '{task}' (keys: {keys}); a JSON object for {file.option} maps "
                         f"task names to {what}: add '{task}', or pass a list", exit_code=2)


def _strings(file: CustomFile, value, key: str, option_takes: str) -> Lines:
    if not isinstance(value, list) or not value:
        raise ClipbenchError(f"{file.path}: entry '{key}' is {'empty' if value == [] else 'not a list'}; {file.option} takes "
                             f"{option_takes}", exit_code=2)
    return _numbered(value, file.path, file.option)


def _per_class(file: CustomFile, prompts: dict, classnames: list[str], task: str, key: Optional[str]) -> list[list[str]]:
    where = f"{file.path}" + (f" entry '{key}'" if key else "")
    rows = []
    for index, name in enumerate(classnames):
        found = prompts.get(name)
        if not isinstance(found, list) or not found or not all(isinstance(p, str) and p.strip() for p in found):
            what = "no prompts" if found is None else "not a list of non-blank prompts"
            raise ClipbenchError(f"{where}: {what} for class '{name}' (class {index} of task '{task}'); per-class prompts "
                                 f"(CuPL) give every class name of the task a list of prompts ({file.option})", exit_code=2)
        rows.append(list(found))
    return rows


@dataclass(frozen=True)
class CustomPrompts:
    templates: Optional[CustomFile]
    classnames: Optional[CustomFile]

    def record(self) -> dict:
        """{option: {"file", "sha256"}} of the files given: what a result records in `prompts.overrides`."""
        return {file.option: {"file": str(file.path), "sha256": file.sha256} for file in (self.templates, self.classnames) if file}

    @property
    def tag(self) -> str:
        return tag_of(self.record())

    def options(self) -> str:
        return " and ".join(file.option for file in (self.templates, self.classnames) if file)

    def _classnames(self, task: str, num_classes: int) -> list[str]:
        file = self.classnames
        if isinstance(file.content, list):
            lines = file.content
        else:
            key, value = _keyed(file, task, "lists of class names")
            lines = _strings(file, value, key, "lists of class names")
        if len(lines) != num_classes:
            raise ClipbenchError(f"{file.path}: {len(lines)} class names (the last on {file.unit} {lines[-1][0]}) but task "
                                 f"'{task}' has {num_classes} classes; "
                                 f"give one name per class, {num_classes} in class-index order ({CLASSNAMES})", exit_code=2)
        return [name for _, name in lines]

    def _templates(self, task: str, classnames: list[str]) -> tuple[list[str], Optional[list[list[str]]]]:
        """(templates, per-class prompts or None)."""
        file, key = self.templates, None
        value = file.content
        if isinstance(value, dict):
            if not any(key in value for key in _task_keys(task)) and any(name in value for name in classnames):
                return [], _per_class(file, value, classnames, task, None)  # CuPL: keyed by class name
            key, value = _keyed(file, task, "templates or per-class prompts (or by class name, CuPL's prompts)")
            if isinstance(value, dict):
                return [], _per_class(file, value, classnames, task, key)
            value = _check_templates(file, _strings(file, value, key, "lists of templates or per-class prompts"))
        return [template for _, template in value], None

    def apply(self, declared: Callable[[], Prompts], task: str, num_classes: int) -> Prompts:
        """The prompts of `task` (with `num_classes` classes in its data) with these files in place of the
        `declared` ones (called only for the part no file replaces)."""
        base = declared() if self.templates is None or self.classnames is None else None
        classnames = self._classnames(task, num_classes) if self.classnames else base.classnames
        if self.templates:
            templates, per_class = self._templates(task, classnames)
        else:
            templates, per_class = base.templates, base.per_class
        parts = [f"{file.option} {file.path}" for file in (self.templates, self.classnames) if file]
        origin = ", ".join(parts) + (f" (the rest from {base.origin})" if base is not None else "")
        return Prompts(classnames, templates, origin, per_class=per_class, overrides=self.record())


def read(templates: Optional[Path], classnames: Optional[Path]) -> Optional[CustomPrompts]:
    """The files of --templates and --classnames, read and checked before anything loads; None when neither is given."""
    if templates is None and classnames is None:
        return None
    return CustomPrompts(read_file(templates, TEMPLATES) if templates is not None else None,
                         read_file(classnames, CLASSNAMES) if classnames is not None else None)
