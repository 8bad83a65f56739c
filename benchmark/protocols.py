"""Finds and validates protocol files (protocols/*.toml): a paper's evaluation choices, by name, or a protocol
file given to --protocol by its path. A malformed file is a loud error naming the file and the field."""

from __future__ import annotations

import functools
from pathlib import Path

from .errors import ClipbenchError
from .paths import data_dir
from .registry import Registry
from .specs import ProtocolSpec
from .tasks import parse, task_registry

DEFAULT = "clipbench"


def load_protocol_file(path: Path) -> ProtocolSpec:
    spec = parse(path, ProtocolSpec)
    if spec.name != path.stem:
        raise ClipbenchError(f"{path}: field 'name' is '{spec.name}' but the file is named '{path.stem}.toml'; make them equal")
    tasks = task_registry()
    for name, own in spec.tasks.items():
        # a setting for a task that does not exist, or that its kind does not read, would change nothing, silently
        if name not in tasks:
            raise ClipbenchError(f"{path}: field 'tasks.{name}': {tasks.unknown_message(name)}")
        if own.prompts and tasks.get(name).kind != "classification":
            raise ClipbenchError(f"{path}: field 'tasks.{name}.prompts': task '{name}' is {tasks.get(name).kind}, which "
                                 "reads no prompt file; remove it")
    return spec


def protocol_registry(root: Path | None = None) -> Registry[ProtocolSpec]:
    return _protocol_registry(root or data_dir("protocols"))


@functools.cache
def _protocol_registry(root: Path) -> Registry[ProtocolSpec]:
    registry: Registry[ProtocolSpec] = Registry("protocol")
    for path in sorted(root.glob("*.toml")):
        registry.register(path.stem, load_protocol_file(path), origin=str(path))
    for name, spec in registry.items():
        if spec.alias_of is not None and (spec.alias_of not in registry or registry.get(spec.alias_of).alias_of):
            problem = registry.unknown_message(spec.alias_of) if spec.alias_of not in registry else "an alias of an alias"
            raise ClipbenchError(f"{registry.origin(name)}: field 'alias_of': {problem}")
    return registry


def resolve(name: str) -> ProtocolSpec:
    """A registered protocol by name, or a protocol file (*.toml) by path."""
    registry = protocol_registry()
    if name in registry or not name.endswith(".toml"):
        spec = registry.get(name)
        return registry.get(spec.alias_of) if spec.alias_of else spec
    path = Path(name).expanduser()
    if not path.is_file():
        raise ClipbenchError(f"protocol file {path} does not exist; check the --protocol path", exit_code=2)
    spec = load_protocol_file(path)
    if spec.alias_of:
        return registry.get(spec.alias_of)
    if spec.name in registry:
        raise ClipbenchError(f"{path}: protocol '{spec.name}' is already defined in {registry.origin(spec.name)}; "
                             "give yours another name (its 'name' field and its file name)")
    return spec
