"""What a dataset repository on the Hugging Face hub holds and whether its files in the local hub cache are whole:
the sizes `clipbench data download` checks after a download and lists with --dry-run.

Sizes come from the hub's own listing of the repository: asked of the hub when it can be reached, else the copy
huggingface_hub keeps beside a snapshot (`<cache>/datasets--org--name/trees/<commit>.json`, written by
snapshot_download since huggingface_hub 1.x; a JSON file, its format documented in huggingface_hub/_tree_cache.py).
Without either, a check says the sizes could not be verified instead of passing silently.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from .errors import ClipbenchError
from .specs import HubSource

COMMIT = re.compile(r"^[0-9a-f]{40}$")


def human(size: int) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return ""


def offline() -> bool:
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def repo_folder(repo: str) -> Path:
    """Where huggingface_hub caches the dataset repository `repo` (datasets--org--name under $HF_HUB_CACHE)."""
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE) / ("datasets--" + repo.replace("/", "--"))


def selected(names, patterns: list[str] | None) -> list[str]:
    """The names that snapshot_download's allow_patterns select (every name when there are none)."""
    from huggingface_hub.utils import filter_repo_objects

    return sorted(filter_repo_objects(list(names), allow_patterns=patterns))


def cached_commit(repo: str, revision: str | None) -> str | None:
    """The commit the cache holds for `revision` (a commit, or a branch or tag its refs/ folder names)."""
    if revision and COMMIT.match(revision):
        return revision
    try:
        return (repo_folder(repo) / "refs" / (revision or "main")).read_text().strip() or None
    except OSError:
        return None


def recorded_sizes(repo: str, commit: str) -> dict[str, int] | None:
    """Every file of `repo` at `commit` and its size, as the cache's copy of the hub's listing records them."""
    try:
        record = json.loads((repo_folder(repo) / "trees" / f"{commit}.json").read_text(encoding="utf-8"))
        return {name: int(info.get("lfs_size") or info["size"]) for name, info in record["files"].items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def hub_sizes(repo: str, revision: str | None) -> dict[str, int]:
    """Every file of `repo` at `revision` and its size, asked of the hub (network)."""
    from huggingface_hub import HfApi
    from huggingface_hub.hf_api import RepoFile

    return {item.path: (item.lfs.size if item.lfs else item.size)
            for item in HfApi().list_repo_tree(repo, repo_type="dataset", revision=revision, recursive=True)
            if isinstance(item, RepoFile)}


@dataclass
class Listing:
    files: dict[str, int]  # path in the repository -> bytes; empty when unknown
    origin: str  # where the names and sizes come from, or why they are unknown


def listing(source: HubSource) -> Listing:
    """The files a download of `source` fetches, with their sizes: the hub's answer when it can be asked, else the
    cache's record of the revision, else unknown (said, with why)."""
    why = "HF_HUB_OFFLINE is set"
    if not offline():
        try:
            sizes = hub_sizes(source.hub, source.revision)
            return Listing({name: sizes[name] for name in selected(sizes, source.hub_files)}, "the hub")
        except Exception as exc:  # noqa: BLE001 - any failure to ask leaves the cache's record
            why = f"the hub could not be asked: {type(exc).__name__}"
    commit = cached_commit(source.hub, source.revision)
    sizes = recorded_sizes(source.hub, commit) if commit else None
    if sizes is None:
        return Listing({}, f"files and sizes unknown offline ({why}; the Hugging Face cache holds no listing of it)")
    return Listing({name: sizes[name] for name in selected(sizes, source.hub_files)},
                   f"the Hugging Face cache's listing of commit {commit[:12]} ({why})")


@dataclass
class SizeCheck:
    files: int
    total: int
    verdict: str

    def __str__(self) -> str:
        return f"{self.files} file{'' if self.files == 1 else 's'}, {human(self.total)}; {self.verdict}"


def verify(task: str, repo: str, snapshot: Path, patterns: list[str] | None) -> SizeCheck:
    """Every file of the snapshot that `patterns` select has the size the hub lists for it at the snapshot's commit,
    and none it lists is absent. A short, long or absent file is an error naming it and the fix."""
    on_disk = {path.relative_to(snapshot).as_posix(): path for path in sorted(snapshot.rglob("*")) if path.is_file()}
    chosen = selected(on_disk, patterns)
    sizes = {name: on_disk[name].stat().st_size for name in chosen}
    expected, verdict = recorded_sizes(repo, snapshot.name), "sizes match the hub's listing in the Hugging Face cache"
    if expected is None and not offline():
        try:
            expected, verdict = hub_sizes(repo, snapshot.name), "sizes match the hub's listing"
        except Exception:  # noqa: BLE001 - said in the verdict below
            expected = None
    if expected is None:
        return SizeCheck(len(chosen), sum(sizes.values()), "sizes not verified (no listing of this commit in the "
                                                            "Hugging Face cache, and the hub could not be asked)")
    wrong = [f"{name} is {sizes[name]:,} bytes, the hub lists {expected[name]:,}" for name in chosen
             if name in expected and sizes[name] != expected[name]]
    absent = [f"{name} is missing" for name in selected(expected, patterns) if name not in on_disk]
    if wrong or absent:
        damaged = [str(on_disk[name].resolve()) for name in chosen if name in expected and sizes[name] != expected[name]]
        delete = f"delete {', '.join(damaged)} and " if damaged else ""
        raise ClipbenchError(
            f"task '{task}': dataset {repo} in the Hugging Face cache ({snapshot}) is incomplete: "
            f"{'; '.join(wrong + absent)}; {delete}run 'clipbench data download {task}' again with network access "
            "(huggingface_hub fetches what is missing)")
    return SizeCheck(len(chosen), sum(sizes.values()), verdict)
