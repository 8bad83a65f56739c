"""Text for `clipbench list`."""

from __future__ import annotations

import pandas as pd


def _table(rows: list[dict]) -> str:
    if not rows:
        return "(none)"
    return pd.DataFrame(rows).to_markdown(index=False, tablefmt="github", disable_numparse=True)


def list_models(pattern: str = "*") -> str:
    from .models.catalog import model_registry

    from .models.hub import cached_weights, count_parameters_in

    registry = model_registry()
    rows = []
    for name in registry.names(pattern):
        spec = registry.get(name)
        parameters = count_parameters_in(cached_weights(spec.id, spec.revision)) or spec.parameters  # the file, else the spec
        rows.append({
            "model": name,
            "backend": spec.backend,
            "id": spec.id if not spec.id.startswith("local-dir:") else "bundled",
            "revision": (spec.revision or ("-" if spec.id.startswith("local-dir:") else "main"))[:12],  # a commit: its first 12
            "languages": ",".join(spec.languages) or "-",
            "parameters": f"{parameters / 1e6:.1f}M" if parameters else "unknown",
            "licence": spec.licence,
        })
    return _table(rows)


def task_size(spec) -> str:
    """Images (and texts) of the task's split, as published."""
    if not spec.expected_images:
        return "-"
    return f"{spec.expected_images:,}" + (f" / {spec.expected_texts:,} texts" if spec.expected_texts else "")


def sources_cell(spec) -> str:
    """A task's typed sources after its folder (benchmark.sources), in order: the hub repository of each hub source,
    `manual` for a manual route."""
    return ", ".join(getattr(s, "repository", None) or s.kind for s in spec.sources) or "-"


def list_tasks(pattern: str = "*") -> str:
    from .tasks import task_registry

    registry = task_registry()
    rows = [
        {
            "task": name,
            "kind": (spec := registry.get(name)).kind,
            "languages": ",".join(spec.languages + [f"{lang} ({target})" for lang, target in spec.language_tasks.items()]),
            "split": spec.split,
            "size": task_size(spec),
            "main score": spec.main_score,
            "format": spec.dataset.format,
            "other sources": sources_cell(spec),
        }
        for name in registry.names(pattern)
    ]
    return _table(rows + webdataset_rows(pattern))


def webdataset_rows(pattern: str) -> list[dict]:
    """CLIP_benchmark's webdatasets (`wds/...`) that `pattern` names: shown by a filter (`--filter 'wds/*'`), not in
    the plain listing of the task files."""
    import fnmatch

    from . import webdatasets

    if pattern == "*":
        return []
    return [{"task": name, "kind": (kind := webdatasets.kind_of(name))[0], "languages": "en", "split": "test", "size": "-",
             "main score": kind[2], "format": f"wds, hub {webdatasets.hub_repository(name)}", "other sources": "-"}
            for name in sorted(webdatasets.NAMES) if fnmatch.fnmatch(name, pattern)]


def list_suites(pattern: str = "*") -> str:
    from .tasks import suite_registry

    registry = suite_registry()
    return _table([
        {"suite": name, "tasks": len(registry.get(name).tasks), "aggregate": registry.get(name).aggregate,
         "description": registry.get(name).description}
        for name in registry.names(pattern)
    ])


def list_protocols(pattern: str = "*") -> str:
    from .protocols import protocol_registry

    registry = protocol_registry()
    rows = []
    for name in registry.names(pattern):
        spec = registry.get(name)
        source = spec.source
        rows.append({"protocol": name,
                     "source": f"{source.repository}@{source.commit[:7]} {source.path}" if source else "-",
                     "changes": spec.changes(), "description": spec.description})
    return _table(rows)
