"""`clipbench data download`: fetch every requested task's hub source and say where each landed, or, with
--dry-run, list what would be fetched and fetch nothing. A task without a hub source is listed with where to get
it by hand; the command fails (exit 1) when any task could not be fetched, after trying all the others."""

from __future__ import annotations

from pathlib import Path

from . import data as datasets
from .download import fetch, located, manual_route
from .errors import ClipbenchError
from .hub_files import human, listing
from .specs import TaskSpec
from .tasks import holding


def requested(specs: list[TaskSpec]) -> list[TaskSpec]:
    """The tasks holding the data of `specs` in each of their languages (`flickr30k` brings `flickr30k-cn`), once."""
    tasks = [holding(task, language) for task in specs for language in task.offered_languages]
    return list({(task.name, task.source_file): task for task in tasks}.values())


def _failure(failed: list[tuple[TaskSpec, ClipbenchError]], tried: int, verb: str) -> ClipbenchError:
    """One task's own error when only one was asked for; else a summary line and a line per task."""
    if tried == 1:
        return failed[0][1]
    lines = [f"{len(failed)} of {tried} tasks {verb}: {', '.join(spec.name for spec, _ in failed)}"]
    return ClipbenchError("\n".join(lines + [f"  {spec.name}: {_own(spec, error)}" for spec, error in failed]))


def _own(spec: TaskSpec, error: ClipbenchError) -> str:
    """The message without the `task 'name': ` it opens with (the line names the task already)."""
    text, prefix = str(error), f"task '{spec.name}': "
    return text[len(prefix):] if text.startswith(prefix) else text


def download_all(specs: list[TaskSpec], data_root: Path, echo) -> None:
    """Fetch each task in turn (huggingface_hub's progress bars on stderr) and print where it landed."""
    tasks, failed = requested(specs), []
    for spec in tasks:
        if datasets.source(spec) is None:
            echo(f"{spec.name}: drawn at run time; nothing to download")
            continue
        try:
            target, sizes = fetch(spec, data_root)
            read = read_as_the_task(spec, data_root)
        except ClipbenchError as error:
            failed.append((spec, error))
            continue
        echo(f"{spec.name}: {target} ({sizes}{read})")
    if failed:
        raise _failure(failed, len(tasks), "could not be fetched")


def read_as_the_task(spec: TaskSpec, data_root: Path) -> str:
    """A mirror just fetched, read as `run` would read it: its class names, split size (and captions) checked
    against what the task file declares (benchmark.data.mirror), so a mirror that changed is named now, not at the
    next run. "" when what `run` reads is not the mirror (a folder under the data root wins; archives are unpacked
    into the folder, whose reader checks them at run time)."""
    source = datasets.source(spec)
    if source is None or not source.hub_cache:
        return ""
    served = getattr(datasets.hub_sources(spec)[0], "languages", None) or spec.languages
    found = located(spec, data_root, language=served[0])
    data = datasets.load(found, served[0], data_root)
    if not getattr(data, "origin", None):
        return ""
    declared = datasets.hub_sources(spec)[0].images is not None
    return (f"; read as the task: {len(data.images):,} images" + (f", {len(data.texts):,} texts" if hasattr(data, "texts")
            else "") + (", as its task file declares" if declared else ""))


def dry_run(specs: list[TaskSpec], data_root: Path, echo) -> None:
    """Per task: the repository, revision and file patterns it would fetch, the files and sizes when the hub (or
    the cache's listing) says, and where they would land; the tasks without a hub source with their manual route."""
    tasks, manual = requested(specs), []
    for spec in tasks:
        source = datasets.source(spec)
        if source is None:
            echo(f"{spec.name}: drawn at run time; nothing to download")
            continue
        if not source.hub:
            manual.append(spec)
            echo(f"{spec.name}: no hub source; by hand: {manual_route(spec)}")
            continue
        target = ("read where huggingface_hub caches it" if source.hub_cache else
                  f"copied to {datasets.resolve_path(source.path, data_root)} (zip archives unpacked)")
        echo(f"{spec.name}: hub dataset {source.hub}, revision {source.revision or 'main'}, "
             f"files {', '.join(source.hub_files or ['(every file)'])}; {target}")
        found = listing(source)
        for name, size in found.files.items():
            echo(f"  {name}  {human(size)}")
        if found.files:
            echo(f"  {len(found.files)} file{'' if len(found.files) == 1 else 's'}, "
                 f"{human(sum(found.files.values()))} (from {found.origin})")
        else:
            echo(f"  {found.origin}")
    echo("dry run: nothing was downloaded")
    if manual:
        raise ClipbenchError(f"{len(manual)} of {len(tasks)} tasks ha{'s' if len(manual) == 1 else 've'} no hub source to "
                             f"download: {', '.join(spec.name for spec in manual)}; get {'it' if len(manual) == 1 else 'them'} "
                             "by hand, as listed above")
