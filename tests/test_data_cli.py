"""The data commands as a new user meets them, in-process and offline: `run` names every missing dataset at once
(with the one command that fetches what the hub has), `data download` checks sizes against the hub's listing in
the cache, lists what it would fetch with --dry-run, and `data check` renders a table with a summary."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from pathlib import Path

import pytest

from benchmark import cli

COMMIT = hashlib.sha1(b"org/gone-hub").hexdigest()


def task_file(folder: Path, name: str, extra: str = "") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.toml").write_text(
        f'name = "{name}"\nkind = "retrieval"\ndescription = "a test task"\nlanguages = ["en", "pt"]\nsplit = "test"\n'
        f'metrics = ["mean_recall"]\nmain_score = "mean_recall"\n[dataset]\nformat = "cnclip"\npath = "{name}"\n{extra}')


@pytest.fixture
def setup(tmp_path, monkeypatch):
    """Three registered tasks whose data is not under the data root: one with a manual download route, one on the
    hub, one whose task file names no route; an empty hub cache."""
    from huggingface_hub import constants

    tasks = tmp_path / "tasks"
    task_file(tasks, "gone-a")
    task_file(tasks, "gone-b", 'download = "apply at https://example.org/gone-b"\n')
    task_file(tasks, "gone-hub", 'hub = "org/gone-hub"\nhub_files = ["*.zip"]\n')
    monkeypatch.setenv("CLIPBENCH_TASKS", str(tasks))
    monkeypatch.setenv("CLIPBENCH_DATA_ROOT", str(tmp_path / "data"))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    return tmp_path


def clipbench(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.run_app(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def archive() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as handle:
        handle.writestr("gone-hub/test_texts.jsonl", "{}\n" * 200)
    return buffer.getvalue()


def hub_cache(root: Path, files: dict[str, bytes], listed: dict[str, int] | None = None) -> Path:
    """org/gone-hub in huggingface_hub's cache layout: blobs named by their hash, the snapshot's files linking to
    them, refs/main, and (`listed`, default the files' own sizes) the hub's listing of the commit, trees/<commit>.json."""
    repo = root / "hub" / "datasets--org--gone-hub"
    snapshot = repo / "snapshots" / COMMIT
    (repo / "blobs").mkdir(parents=True)
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(COMMIT)
    for name, payload in files.items():
        blob = repo / "blobs" / hashlib.sha256(payload).hexdigest()
        blob.write_bytes(payload)
        (snapshot / name).symlink_to(Path("..", "..", "blobs", blob.name))
    sizes = {name: len(payload) for name, payload in files.items()} if listed is None else listed
    (repo / "trees").mkdir()
    (repo / "trees" / f"{COMMIT}.json").write_text(json.dumps(
        {"format_version": 1, "files": {name: {"size": size, "blob_id": "0" * 40} for name, size in sizes.items()}}))
    return snapshot


def test_run_names_every_missing_dataset_at_once(setup, capsys, monkeypatch):
    from benchmark import models, run

    (setup / "data" / "gone-a").mkdir(parents=True)  # there, but without its files: cannot be used
    loads = []
    real = run.load_or_fetch
    monkeypatch.setattr(run, "load_or_fetch", lambda task, *rest: loads.append(task.name) or real(task, *rest))
    monkeypatch.setattr(models, "load", lambda *a, **k: pytest.fail("the model loaded"))
    out = setup / "out"
    code, _, err = clipbench(capsys, "run", "--model", "tiny-shapes", "--task", "gone-a", "--task", "shapes", "--task",
                             "gone-b", "--task", "gone-hub", "--language", "en", "--language", "pt", "--output", str(out))
    assert code == 1, err
    lines = err.rstrip("\n").splitlines()
    assert lines[0] == "error: 2 datasets are missing: gone-b, gone-hub; 1 dataset cannot be used: gone-a (nothing was run)"
    assert all(line.startswith("  ") for line in lines[1:]) and "Traceback" not in err
    body = "\n".join(lines)
    assert "gone-a [en, pt]: task 'gone-a'" in body and "test_imgs.tsv" in body  # the reader's own message
    assert f"gone-b [en, pt]: not in {setup / 'data' / 'gone-b'}; by hand: apply at https://example.org/gone-b" in body
    assert "gone-hub [en, pt]: not in" in body and "on the hub as org/gone-hub, not fetched (HF_HUB_OFFLINE is set)" in body
    assert "  fetch what the hub has: clipbench data download gone-hub\n" in body + "\n"
    assert lines[-1] == "  get the rest by hand, as each line says; 'clipbench data check gone-b gone-hub' then shows what is found"
    assert loads.count("shapes") == 2 and loads.count("gone-hub") == 1  # each language once; the missing one once
    assert not out.exists()


def test_one_missing_dataset_keeps_its_own_line(setup, capsys):
    code, _, err = clipbench(capsys, "run", "--model", "tiny-shapes", "--task", "gone-b", "--task", "shapes",
                             "--output", str(setup / "out"))
    assert code == 1 and len(err.strip().splitlines()) == 1, err
    assert err.startswith("error: task 'gone-b':") and "apply at https://example.org/gone-b" in err


def test_dry_run_lists_what_it_would_fetch_and_fetches_nothing(setup, capsys, monkeypatch):
    import huggingface_hub

    hub_cache(setup, {"gone.zip": b"x" * 1500, "notes.txt": b"not selected"})
    monkeypatch.setattr(huggingface_hub, "snapshot_download", lambda *a, **k: pytest.fail("fetched"))
    code, out, err = clipbench(capsys, "data", "download", "--dry-run", "gone-hub", "gone-b", "shapes")
    assert code == 1, err
    assert ("gone-hub: hub dataset org/gone-hub, revision main, files *.zip; copied to "
            f"{setup / 'data' / 'gone-hub'} (zip archives unpacked)") in out
    assert "  gone.zip  1.5 kB\n" in out and "notes.txt" not in out
    assert f"1 file, 1.5 kB (from the Hugging Face cache's listing of commit {COMMIT[:12]} (HF_HUB_OFFLINE is set))" in out
    assert "gone-b: no hub source; by hand: apply at https://example.org/gone-b" in out
    assert "shapes: drawn at run time; nothing to download" in out and "dry run: nothing was downloaded" in out
    assert err == "error: 1 of 3 tasks has no hub source to download: gone-b; get it by hand, as listed above\n"
    assert not (setup / "data").exists()

    (setup / "hub" / "datasets--org--gone-hub" / "trees" / f"{COMMIT}.json").unlink()
    code, out, _ = clipbench(capsys, "data", "download", "--dry-run", "gone-hub")
    assert code == 0 and "files and sizes unknown offline (HF_HUB_OFFLINE is set" in out, out


def test_download_checks_sizes_against_the_hubs_listing(setup, capsys):
    snapshot = hub_cache(setup, {"gone.zip": archive()})
    target = setup / "data" / "gone-hub"
    code, out, err = clipbench(capsys, "data", "download", "gone-hub")
    assert code == 0, err
    assert out == f"gone-hub: {target} (1 file, {len(archive())} B; sizes match the hub's listing in the Hugging Face cache)\n"
    assert (target / "test_texts.jsonl").is_file()

    blob = (snapshot / "gone.zip").resolve()
    blob.write_bytes(archive()[:100])  # a cut download
    code, out, err = clipbench(capsys, "data", "download", "gone-hub", "--data-root", str(setup / "other"))
    assert code == 1 and out == "" and len(err.splitlines()) == 1, err
    assert err.startswith("error: task 'gone-hub': dataset org/gone-hub in the Hugging Face cache")
    assert f"gone.zip is 100 bytes, the hub lists {len(archive()):,}; delete {blob} and run 'clipbench data download gone-hub' again" in err
    assert not (setup / "other").exists()  # nothing copied from a damaged cache


def test_download_without_a_listing_says_sizes_are_unverified(setup, capsys):
    hub_cache(setup, {"gone.zip": archive()})
    (setup / "hub" / "datasets--org--gone-hub" / "trees" / f"{COMMIT}.json").unlink()
    code, out, _ = clipbench(capsys, "data", "download", "gone-hub")
    assert code == 0 and "sizes not verified (no listing of this commit in the Hugging Face cache" in out, out


def test_download_tries_every_task_and_fails_after(setup, capsys):
    hub_cache(setup, {"gone.zip": archive(), "extra.zip": archive()}, listed={"gone.zip": len(archive()), "extra.zip": 5})
    code, out, err = clipbench(capsys, "data", "download", "gone-b", "gone-hub", "gone-a")
    assert code == 1 and out == "", out
    lines = err.splitlines()
    assert lines[0] == "error: 3 of 3 tasks could not be fetched: gone-b, gone-hub, gone-a"
    assert lines[1] == "  gone-b: task 'gone-b' has no hub source to download; by hand: apply at https://example.org/gone-b"
    assert lines[2].startswith("  gone-hub: dataset org/gone-hub in the Hugging Face cache") and \
        f"extra.zip is {len(archive()):,} bytes, the hub lists 5" in lines[2]
    assert lines[3] == "  gone-a: task 'gone-a' has no hub source to download; by hand: its task file names no download; see README, Datasets"


def test_download_shows_huggingface_hubs_progress_bars(setup, capsys, monkeypatch):
    """A transformers model load turns huggingface_hub's bars off for the whole process; `data download` turns them
    back on and leaves huggingface_hub's resuming alone (no force_download)."""
    import huggingface_hub
    from huggingface_hub.utils import are_progress_bars_disabled, disable_progress_bars

    snapshot = hub_cache(setup, {"gone.zip": archive()})
    calls = []

    def snapshot_download(**kwargs):
        calls.append((are_progress_bars_disabled(), kwargs))
        return str(snapshot)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    disable_progress_bars()
    code, _, err = clipbench(capsys, "data", "download", "gone-hub")
    assert code == 0, err
    [(disabled, kwargs)] = calls
    assert not disabled and not ({"force_download", "tqdm_class", "local_files_only"} & set(kwargs)), kwargs


def test_check_renders_a_table_and_a_summary(setup, capsys):
    (setup / "data" / "gone-a").mkdir(parents=True)
    code, out, err = clipbench(capsys, "data", "check", "shapes", "gone-a", "gone-b", "gone-hub")
    assert code == 1
    lines = out.splitlines()
    assert [c.strip() for c in lines[0].strip("|").split("|")] == ["task", "lang", "status", "images", "texts", "classes",
                                                                   "source", "detail"]
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in lines[2:]]
    assert [row[:3] + row[6:7] for row in rows] == [
        ["shapes", "en", "present", "drawn at run time"], ["shapes", "pt", "present", "drawn at run time"],
        ["shapes", "zh", "present", "drawn at run time"],
        ["gone-a", "en", "UNREADABLE", "folder"], ["gone-a", "pt", "UNREADABLE", "folder"],
        ["gone-b", "en", "MISSING", "folder"], ["gone-b", "pt", "MISSING", "folder"],
        ["gone-hub", "en", "MISSING", "folder; hub-archive org/gone-hub"],
        ["gone-hub", "pt", "MISSING", "folder; hub-archive org/gone-hub"]]
    assert rows[0][3:6] == ["400", "-", "16"] and "apply at https://example.org/gone-b" in rows[5][7]
    assert err.splitlines() == ["9 (task, language) pairs: 3 present, 2 UNREADABLE, 4 MISSING",
                                "fetch what the hub has: clipbench data download gone-hub",
                                "get the rest by hand, as the detail column says"]


def test_size_check_names_a_listed_file_the_snapshot_lacks(setup):
    """huggingface_hub 2.x refuses such a snapshot offline itself; older versions, and a snapshot taken with other
    patterns, reach this check."""
    from benchmark.errors import ClipbenchError
    from benchmark.hub_files import verify

    snapshot = hub_cache(setup, {"gone.zip": archive()}, listed={"gone.zip": len(archive()), "lost.zip": 7, "x.txt": 1})
    with pytest.raises(ClipbenchError, match=r"incomplete: lost\.zip is missing; run 'clipbench data download gone-hub'"):
        verify("gone-hub", "org/gone-hub", snapshot, ["*.zip"])
    assert verify("gone-hub", "org/gone-hub", snapshot, ["gone.zip"]).files == 1


def test_a_suite_stands_for_its_tasks_in_the_commands(setup):
    from benchmark import missing, tasks

    (setup / "tasks" / "suites").mkdir()
    (setup / "tasks" / "suites" / "gone.toml").write_text('name = "gone"\ndescription = "d"\ntasks = ["gone-a", "gone-b"]\n')
    gone_a, gone_b, gone_hub, shapes = tasks.resolve(["gone-a", "gone-b", "gone-hub", "shapes"])
    assert missing.arguments([gone_hub, gone_b, gone_a]) == "gone-hub gone"
    assert missing.arguments([gone_b, shapes, gone_a]) == "gone shapes"
    assert missing.arguments([gone_a, gone_hub]) == "gone-a gone-hub"  # gone-b is not missing: the suite is not named


def test_dry_run_online_lists_the_hubs_sizes(setup, capsys, monkeypatch):
    """Online, the sizes are the hub's answer (list_repo_tree, stood in for here): an LFS file's own size, not its
    pointer's, and only the files the task's patterns select."""
    import huggingface_hub
    from huggingface_hub.hf_api import RepoFile

    from benchmark import hub_files

    asked = []

    def list_repo_tree(self, repo_id, **kwargs):
        asked.append((repo_id, kwargs))
        return [RepoFile(path="gone.zip", size=134, oid="1" * 40, lfs={"size": 2_500_000, "oid": "2" * 64, "pointerSize": 134}),
                RepoFile(path="notes.txt", size=10, oid="3" * 40)]

    monkeypatch.setattr(hub_files, "offline", lambda: False)
    monkeypatch.setattr(huggingface_hub.HfApi, "list_repo_tree", list_repo_tree)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", lambda *a, **k: pytest.fail("fetched"))
    code, out, err = clipbench(capsys, "data", "download", "--dry-run", "gone-hub")
    assert code == 0, err
    assert "  gone.zip  2.5 MB\n  1 file, 2.5 MB (from the hub)\n" in out and "notes.txt" not in out
    assert asked == [("org/gone-hub", {"repo_type": "dataset", "revision": None, "recursive": True})]


def test_size_check_online_without_a_cached_listing_asks_the_hub(setup, monkeypatch):
    import huggingface_hub
    from huggingface_hub.hf_api import RepoFile

    from benchmark import hub_files
    from benchmark.errors import ClipbenchError

    snapshot = hub_cache(setup, {"gone.zip": archive()})
    (setup / "hub" / "datasets--org--gone-hub" / "trees" / f"{COMMIT}.json").unlink()
    listed = {"size": len(archive())}
    monkeypatch.setattr(hub_files, "offline", lambda: False)
    monkeypatch.setattr(huggingface_hub.HfApi, "list_repo_tree",
                        lambda self, repo_id, **kwargs: [RepoFile(path="gone.zip", size=listed["size"], oid="1" * 40)])
    assert hub_files.verify("gone-hub", "org/gone-hub", snapshot, ["*.zip"]).verdict == "sizes match the hub's listing"
    listed["size"] += 1
    with pytest.raises(ClipbenchError, match=f"gone.zip is {len(archive()):,} bytes, the hub lists {len(archive()) + 1:,}"):
        hub_files.verify("gone-hub", "org/gone-hub", snapshot, ["*.zip"])
