"""`clipbench data check|download`: what a task finds under the data root, and fetching what the hub has."""

from __future__ import annotations

import fnmatch
import shutil
import zipfile
from dataclasses import replace
from pathlib import Path

from . import data as datasets, hub_files
from .errors import ClipbenchError
from .models.base import offline_hint
from .specs import DatasetSpec, HubSource, TaskSpec


def check(specs: list[TaskSpec], data_root: Path) -> list[dict]:
    """A row per (task, language): present with counts and the source read (`folder`, or the mirror and the commit
    read); MISSING (its files are not there) or UNREADABLE (there, but the reader refuses them), with the reader's
    own message and the task's other sources for that language."""
    from .tasks import holding

    rows = []
    for task in specs:
        for language in task.offered_languages:
            spec = holding(task, language)
            row = {"task": spec.name, "lang": language, "status": "present", "images": "-", "texts": "-", "classes": "-",
                   "source": "-", "detail": ""}
            try:
                found = datasets.load(located(spec, data_root, language=language), language, data_root)
                row["source"] = _read_from(spec, found)
                row["images"] = len(found.images)
                texts = getattr(found, "texts", None)
                row["texts"] = len(texts) if texts is not None else "-"
                row["classes"] = getattr(found, "num_classes", "-")
                row["detail"] = found.images.location
                expected = (spec.expected_images, len(found.images)), (spec.expected_texts, texts and len(texts))
                if any(want and got != want for want, got in expected):
                    row["status"] = "present, sizes differ"
                    row["detail"] = (f"expected {spec.expected_images} images"
                                     + (f" / {spec.expected_texts} texts" if spec.expected_texts else "") + f"; {row['detail']}")
            except ClipbenchError as exc:
                row.update(status="MISSING" if is_missing(spec, data_root) else "UNREADABLE", detail=str(exc),
                           source=_elsewhere(spec, language))
            rows.append(row)
    return rows


def is_missing(spec: TaskSpec, data_root: Path) -> bool:
    """Whether the task's files are absent: no folder under the data root and no snapshot of any of its webdataset
    mirrors in the Hugging Face cache (nothing is fetched). Data drawn at run time is never missing."""
    found = datasets.location(spec)
    if found is None or datasets.resolve_path(found.path, data_root).exists():
        return False
    for mirror in [s for s in datasets.hub_sources(spec) if s.kind == "hub-webdataset"]:
        try:
            hub_snapshot(spec, datasets.hub_view(spec, mirror), data_root, fetch=False)
            return False
        except ClipbenchError:
            continue
    return True


def manual_route(spec: TaskSpec) -> str:
    """How a person gets the task's files: its typed manual route (what to do, and why nothing can be fetched),
    else its `[dataset].download`."""
    routes = [s for s in spec.sources if s.kind == "manual"]
    if routes:
        return f"{routes[0].how} ({routes[0].why})"
    source = datasets.source(spec)
    return (source and source.download) or "its task file names no download; see README, Datasets"


def _read_from(spec: TaskSpec, data) -> str:
    """The `source` cell of a present row: the task's folder, or the mirror and commit read."""
    origin = getattr(data, "origin", None)
    if origin:
        return f"{origin['kind']} {origin['repository']}@{origin['revision']}"
    return "folder" if datasets.location(spec) is not None else "drawn at run time"


def _elsewhere(spec: TaskSpec, language: str) -> str:
    """The `source` cell of a missing or unreadable row: every source the task knows for that language, in order of
    preference (its folder first), none of them present or readable."""
    kinds = ["folder"] if datasets.location(spec) is not None else []
    kinds += [f"{s.kind} {s.repository}" if s.kind in ("hub-webdataset", "hub-archive") else s.kind
              for s in spec.sources if getattr(s, "languages", None) is None or language in s.languages]
    return "; ".join(kinds) or "-"


def _unpack(archives: list[Path], target: Path) -> None:
    """Extract downloaded zip archives: into the data root when the archive's top folder is the task's
    folder (Flickr30k-CN.zip holds Flickr30k-CN/...), else into the task's folder."""
    for archive in archives:
        with zipfile.ZipFile(archive) as handle:
            tops = {name.split("/", 1)[0] for name in handle.namelist() if name.strip("/")}
            destination = target.parent if tops == {target.name} else target
            handle.extractall(destination)


def hub_snapshot(spec: TaskSpec, source: HubSource, data_root: Path, fetch: bool = True) -> Path:
    """The task's files in the Hugging Face cache (a source with `hub_cache`): snapshot_download of its
    `hub_files` (`fetch`), or only what the cache already holds. Failing, one line names the repository, the files
    to download and where they go, and where a local copy would be read instead."""
    from huggingface_hub import constants, snapshot_download

    try:
        return Path(snapshot_download(repo_id=source.hub, repo_type="dataset", revision=source.revision,
                                      allow_patterns=source.hub_files, local_files_only=not fetch))
    except Exception as exc:  # noqa: BLE001 - every hub failure becomes one clear line
        if not fetch:
            why = ""
        elif constants.HF_HUB_OFFLINE:
            why = " and could not be fetched (HF_HUB_OFFLINE is set)"
        else:
            why = f" and could not be fetched ({type(exc).__name__}: {next((x for x in str(exc).splitlines() if x.strip()), '')[:160]})"
        files = ", ".join(source.hub_files or ["every file"])
        revision = f" at revision {source.revision}" if source.revision else ""
        raise ClipbenchError(
            f"task '{spec.name}': dataset {source.hub}{revision} is not in the Hugging Face cache ({constants.HF_HUB_CACHE})"
            f"{why}; with network access, run 'clipbench data download {spec.name}' to download "
            f"its {files} into that cache, or put a copy of those files at {datasets.resolve_path(source.path, data_root)}"
        ) from None


def reading_from(spec: TaskSpec, folder: Path) -> TaskSpec:
    """`spec` with its dataset read from `folder` (its other dataset options unchanged)."""
    return spec.model_copy(update={"dataset": DatasetSpec(**{**spec.dataset.model_dump(), "path": str(folder)})})


def located(spec: TaskSpec, data_root: Path, fetch: bool = False, language: str | None = None) -> TaskSpec:
    """`spec` reading its files where they are: its folder under the data root when that exists, else its first
    webdataset mirror (a `hub-webdataset` source serving `language`) whose snapshot is in the Hugging Face cache
    (downloaded first when `fetch`), read there. When none is, `spec` itself (its reader names what is missing)."""
    found = datasets.location(spec)
    if found is None or datasets.resolve_path(found.path, data_root).exists():
        return spec
    for mirror in [s for s in datasets.hub_sources(spec, language) if s.kind == "hub-webdataset"]:
        try:
            return datasets.mirror.reading(spec, mirror, hub_snapshot(spec, datasets.hub_view(spec, mirror), data_root, fetch))
        except ClipbenchError:
            continue
    return spec


def download(spec: TaskSpec, data_root: Path) -> Path:
    """Fetch the task's hub source (see `fetch`) and return where its files are."""
    return fetch(spec, data_root)[0]


def fetch(spec: TaskSpec, data_root: Path) -> tuple[Path, hub_files.SizeCheck]:
    """Download the task's hub source through huggingface_hub, check every file's size against the hub's listing
    (`hub_files.verify`), then copy what `hub_files` selects under the data root and unpack its archives; a source
    read in the hub cache (`hub_cache`) stays there. Returns where the files landed, and the size check.

    huggingface_hub draws a progress bar per file on stderr and resumes a cut download from the partial file it
    keeps in its cache (blobs/*.incomplete); nothing here turns either off."""
    source = datasets.source(spec)
    if source is None or not source.hub:
        raise ClipbenchError(f"task '{spec.name}' has no hub source to download; by hand: {manual_route(spec)}")
    _show_progress()
    if source.hub_cache:  # read where huggingface_hub keeps it: nothing is copied
        snapshot = hub_snapshot(spec, source, data_root)
        return snapshot, hub_files.verify(spec.name, source.hub, snapshot, source.hub_files)
    from huggingface_hub import snapshot_download

    hub = source.hub
    try:
        snapshot = Path(snapshot_download(repo_id=hub, repo_type="dataset", revision=source.revision,
                                          allow_patterns=source.hub_files))
    except Exception as exc:  # noqa: BLE001 - every hub failure becomes one clear line
        problem = offline_hint(f"dataset {hub}", exc)
        if problem:
            raise problem from None
        raise ClipbenchError(f"could not download dataset {hub} for task '{spec.name}': {str(exc).splitlines()[0]}") from None
    sizes = hub_files.verify(spec.name, hub, snapshot, source.hub_files)
    target = datasets.resolve_path(source.path, data_root)
    patterns = source.hub_files or ["*"]
    copied = []
    for cached in sorted(p for p in snapshot.rglob("*") if p.is_file()):
        relative = cached.relative_to(snapshot).as_posix()
        if any(fnmatch.fnmatch(relative, pattern) for pattern in patterns):  # offline, the whole snapshot comes back
            destination = target / relative
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(cached, destination)  # follows the cache's symlinks: real files land
            copied.append(destination)
    if not copied:
        raise ClipbenchError(f"dataset {hub} has no file matching {patterns} for task '{spec.name}'")
    try:
        _unpack([p for p in copied if p.suffix == ".zip"], target)
    except zipfile.BadZipFile as exc:
        raise ClipbenchError(f"a downloaded archive of {hub} is damaged ({exc}); delete it from the hub cache and retry") from None
    return target, sizes


def _show_progress() -> None:
    """huggingface_hub's progress bars back on (loading a transformers model turns them off for the whole
    process), unless the user turned them off ($HF_HUB_DISABLE_PROGRESS_BARS)."""
    from huggingface_hub import constants
    from huggingface_hub.utils import enable_progress_bars

    if not constants.HF_HUB_DISABLE_PROGRESS_BARS:
        enable_progress_bars()


def load_or_fetch(spec: TaskSpec, language: str, data_root: Path, echo=print):
    """The task's data in `language` from the first source that is present or fetchable: its folder under the data
    root; else each hub source serving `language`, in the task file's order (a webdataset mirror is read in the
    Hugging Face cache, an archive is fetched and unpacked into the folder). huggingface_hub honours HF_HUB_OFFLINE
    and its cache. When none can be had, the error is the reader's own (the files expected and where to get them)
    plus why the hub could not help. A source that is had but does not match what the task file declares (a
    mirror's class names or size) is an error, not skipped."""
    where = datasets.location(spec)
    if where is None or datasets.resolve_path(where.path, data_root).exists():
        return datasets.load(spec, language, data_root)
    failures = []
    for source in datasets.hub_sources(spec, language):
        if source.kind == "hub-webdataset":
            try:
                snapshot = hub_snapshot(spec, datasets.hub_view(spec, source), data_root)
            except ClipbenchError as failed:
                if len(spec.sources) == 1 and spec.dataset.format == "wds":
                    raise  # the repository is the task itself (wds/...): its hub error says it all
                failures.append(_why(spec, failed))
                continue
            echo(f"{spec.name}: reading {source.repository} from the Hugging Face cache: {snapshot}")
            return datasets.load(datasets.mirror.reading(spec, source, snapshot), language, data_root)
        try:
            target = _fetch_archive(spec, source, data_root)
        except ClipbenchError as failed:
            failures.append(str(failed))
            continue
        echo(f"{spec.name}: no local copy; fetched {source.repository} into {target}")
        return replace(datasets.load(spec, language, data_root),
                       origin={"kind": source.kind, "repository": source.repository, "revision": source.revision})
    try:
        return datasets.load(spec, language, data_root)
    except ClipbenchError as missing:
        if failures:
            raise ClipbenchError(f"{missing} (the hub copy could not be fetched either: {'; '.join(failures)})") from None
        raise


def _why(spec: TaskSpec, failed: ClipbenchError) -> str:
    """hub_snapshot's message without the task name and the advice that follows the reason."""
    return str(failed).removeprefix(f"task '{spec.name}': ").split("; with network access", 1)[0]


def _fetch_archive(spec: TaskSpec, archive, data_root: Path) -> Path:
    """download() of this one archive source."""
    return download(spec.model_copy(update={"sources": [archive]}), data_root)
