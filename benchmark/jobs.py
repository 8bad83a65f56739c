"""Which of a run's (checkpoint, task, language) jobs this process runs: its `--shard`, less the jobs whose
result is already there with the same provenance (skipped unless `--overwrite`).

Same provenance: the earlier result is of the same measurement (its identity: group, checkpoint, task, text
field, language, --limit, seed) and records the same inputs, as far as they are known before the model loads:
- the task as defined (kind, split, main score, metric names) and the protocol (name and resolved settings);
- the data: format, fingerprint, image count, text count, class count, task file; the prompts' sha256 and
  template count;
- the model: name, backend, id, open_clip pretrained tag, the pinned revision (when the spec pins one), and its
  weights: the checkpoint file the earlier result read must still be there with the sha256 it recorded;
- the options that change numbers: precision, --bootstrap draws (and seed), --limit (and seed); with
  --save-predictions (--save-queries), its prediction (queries) file must be there too;
- the software: clipbench version, git commit, and the python/torch/torchvision/open_clip/transformers/numpy
  versions.
What does not change the numbers is not compared (device, batch size, workers, timings, the data's location).
When in doubt it is not the same: a fact the earlier result lacks, or a checkpoint that cannot be hashed,
means the job runs again and replaces the file.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from .errors import ClipbenchError
from .results import Result

_SHARD = re.compile(r"\s*(\d+)\s*/\s*(\d+)\s*")


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """`--shard I/N` as (I, N), 1 <= I <= N; None when not given."""
    if text is None:
        return None
    found = _SHARD.fullmatch(text)
    if not found:
        raise ClipbenchError(f"--shard '{text}' is not I/N; give this run's part and the number of parts, 1-based: "
                             "--shard 1/4 ... --shard 4/4", exit_code=2)
    part, parts = int(found.group(1)), int(found.group(2))
    if parts < 1 or not 1 <= part <= parts:
        raise ClipbenchError(f"--shard {part}/{parts}: the part must be 1 to {max(parts, 1)} (1-based: --shard 1/{max(parts, 1)} "
                             f"... --shard {max(parts, 1)}/{max(parts, 1)})", exit_code=2)
    return part, parts


def shard(jobs: list, chosen: tuple[int, int] | None) -> list:
    """Part I of N of `jobs`: every N-th job from the I-th (1-based). The N parts partition `jobs`."""
    if chosen is None:
        return list(jobs)
    part, parts = chosen
    return list(jobs)[part - 1::parts]


# ------------------------------------------------------------------------------------------- skip existing

def planned(*, group: str, checkpoint_name: str | None, task, language: str, variant: str | None, data, facts: dict,
            model, options, recorded_seed: int | None, protocol_name: str, settings: dict, software: dict,
            precision: str) -> dict:
    """What the result of this job will record that is known before the model loads, by dotted field path
    (`model`: the spec that will be loaded; `options`: the run's options; `precision`: the one the job runs at,
    --precision or its protocol's; `software`: clipbench_version, git_commit, versions)."""
    prompts = facts.get("prompts")
    expected = {
        "task": task.name, "kind": task.kind, "language": language, "split": task.split, "variant": variant,
        "main_score": task.main_score, "metrics": sorted(task.metrics), "seed": recorded_seed,
        "bootstrap.n": options.bootstrap or None, "bootstrap.seed": recorded_seed if options.bootstrap else None,
        "limit.n": options.limit, "limit.seed": recorded_seed if options.limit else None,
        "model.name": model.name, "model.group": group, "model.checkpoint_name": checkpoint_name,
        "model.backend": model.backend, "model.id": model.id, "model.pretrained": model.pretrained,
        "dataset.format": task.dataset.format, "dataset.fingerprint": data.images.fingerprint,
        "dataset.n_images": len(data.images), "dataset.task_file": task.source_file,
        "prompts": None if prompts is None else {"sha256": prompts.sha256, "n_templates": len(prompts.templates)},
        "protocol.name": protocol_name, "protocol.settings": settings,
        "run.precision": precision,
        **{f"run.{name}": value for name, value in software.items()},
    }
    if model.revision:
        expected["model.revision"] = model.revision
    for fact in ("n_texts", "n_classes"):
        if fact in facts:
            expected[f"dataset.{fact}"] = facts[fact]
    if options.save_predictions:
        expected["predictions"] = True
    if options.save_queries:
        expected["queries"] = True
    return expected


def difference(found: Result, path: Path, expected: dict) -> str | None:
    """The first recorded fact of `found` (the result at `path`) that differs from `expected`, or None when it
    is the same measurement with the same provenance."""
    payload = found.payload()
    for key, value in expected.items():
        if key == "metrics":
            have: Any = sorted(found.metrics)
        elif key == "prompts":
            have = None if found.prompts is None else {"sha256": found.prompts.sha256, "n_templates": found.prompts.n_templates}
        elif key in ("predictions", "queries"):  # the file the result names beside it
            name = getattr(found.run, key, None) if found.run else None
            have = bool(name) and (path.parent / name).is_file()
        else:
            have = _at(payload, key)
        if have != value:
            return key
    if not _weights_unchanged(found.model.model_dump()):
        return "model.checkpoint_sha256"
    return None


def _at(payload: dict, dotted: str):
    value: Any = payload
    for part in dotted.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _weights_unchanged(model: dict) -> bool:
    path, recorded = model.get("checkpoint"), model.get("checkpoint_sha256")
    if not path or not recorded or not os.path.isfile(path):
        return False  # cannot tell: run it again
    stat = os.stat(path)
    return _sha256(path, stat.st_size, stat.st_mtime_ns) == recorded


_HASHED: dict[tuple, str] = {}


def _sha256(path: str, size: int, mtime_ns: int) -> str:
    """sha256 of a weights file, once per run for files that did not change (several jobs share one checkpoint)."""
    from .models.base import sha256_file

    key = (path, size, mtime_ns)
    if key not in _HASHED:
        _HASHED[key] = sha256_file(path)
    return _HASHED[key]
