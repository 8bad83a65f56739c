"""A registered task read from a hub mirror in CLIP_benchmark's webdataset layout (a `hub-webdataset` source,
benchmark.sources), checked against what the task file declares before anything is evaluated:

- its `classnames.txt` must list exactly the class names the source's mapping declares, in that order;
- its split must hold the declared number of samples (`images`) and, for retrieval, of captions (`texts`);

then each label read is mapped to the task's label (`labels[i]` for the mirror's class i; for multi-label data,
column i moves to column labels[i]), so a mirror whose class order differs from the task's prompts scores right.
The task's own prompts are used (the mirror's classnames.txt only proves which class is which). Any mismatch is
one line naming the repository, the revision read and what differs.

The format is not written in task files: download.located() gives a task this format when it reads a mirror.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from ..errors import ClipbenchError
from ..sources import HubWebdataset, read_mapping
from ..specs import DatasetSpec, Location, TaskSpec
from . import wds
from .base import Format, resolve_path


class Options(Location):
    source: HubWebdataset
    task_file: str = ""  # the task file, whose folder holds the source's mapping file


def revision_of(snapshot: Path) -> str:
    """The commit huggingface_hub stored a snapshot under (its folder name), else the folder itself."""
    return snapshot.name if snapshot.parent.name == "snapshots" else str(snapshot)


def reading(spec: TaskSpec, source: HubWebdataset, snapshot: Path) -> TaskSpec:
    """`spec` reading the mirror `source` from its files at `snapshot`."""
    return spec.model_copy(update={"dataset": DatasetSpec(format="hub-webdataset", path=str(snapshot),
                                                          source=source.model_dump(), task_file=spec.source_file)})


def _first_difference(found: list[str], declared: list[str]) -> str:
    if len(found) != len(declared):
        return f"it lists {len(found)} class names, the task file declares {len(declared)}"
    index = next(i for i, (a, b) in enumerate(zip(found, declared)) if a != b)
    return f"line {index + 1} is {found[index]!r}, the task file declares {declared[index]!r}"


def load(spec: TaskSpec, options: Options, language: str, data_root: Path):
    source = options.source
    root = resolve_path(options.path, data_root)
    where = f"task '{spec.name}': mirror {source.repository} at revision {revision_of(root)} ({root})"
    mapping = None
    if source.mapping is not None:
        mapping = read_mapping(options.task_file, source, spec.num_classes)
        names_file = root / "classnames.txt"
        if not names_file.is_file():
            raise ClipbenchError(f"{where} has no classnames.txt, so its classes cannot be matched to the task's; "
                                 "re-download it")
        found = wds.lines(names_file)
        if found != mapping.classnames:
            raise ClipbenchError(f"{where}: classnames.txt differs from the class names the task file declares "
                                 f"({_first_difference(found, mapping.classnames)}); nothing was evaluated: the mirror "
                                 "changed or is another dataset, so check it and regenerate the mapping "
                                 "(python -m benchmark.dev.mirror_mappings)")
    count = len(mapping.classnames) if mapping is not None else None
    data = wds.load(spec.model_copy(update={"split": source.split}), wds.Options(path=str(root)), language, data_root,
                    num_classes=count)
    sizes = [("samples", source.images, len(data.images))]
    if hasattr(data, "texts"):
        sizes.append(("captions", source.texts, len(data.texts)))
    for what, declared, got in sizes:
        if declared is not None and got != declared:
            raise ClipbenchError(f"{where}: its {source.split} split holds {got} {what}, the task file declares {declared}; "
                                 "nothing was evaluated: it is not the task's split (or is incomplete), so re-download it "
                                 "or remove the source")
    origin = {"kind": source.kind, "repository": source.repository, "revision": revision_of(root)}
    if mapping is None:
        return replace(data, origin=origin)
    order = np.asarray(mapping.labels, dtype=np.int64)
    if data.labels.ndim == 1:
        labels = order[data.labels]
    else:  # multi-label indicator rows: the mirror's column i is the task's column order[i]
        labels = np.zeros_like(data.labels)
        labels[:, order] = data.labels
    return replace(data, labels=labels, prompts=None, origin={**origin, "mapping": source.mapping})


FORMAT = Format(options=Options, load=load, kinds=("classification", "retrieval"))
