"""Faults and bad input around result files: nothing lost, nothing silently wrong.

Every failing case asserts the exit code, one `error: ` line that names the file and the fix, no traceback, no
`unexpected`/`internal error`, and that no earlier result was lost or changed. Runs that must fail before the
model loads use a model that cannot load (`never-loads`): had the work started, its error would show instead.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from benchmark.data import shapes
from benchmark.errors import ClipbenchError
from benchmark.result_names import result_name
from benchmark.results import Result, write_atomic
from benchmark.run import result_file, result_path
from benchmark.tasks import task_registry
from helpers import clipbench_here as clipbench, write_wds

MODEL = ("--model", "tiny-shapes", "--num-workers", "0")


# ------------------------------------------------------------------------------------------------- helpers

def assert_clean(done, code, *needles):
    """Exit `code`, exactly one `error: ` line holding every needle (notes may precede it), no traceback."""
    assert done.returncode == code, (done.returncode, done.stdout, done.stderr)
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    others = [line for line in done.stderr.splitlines() if line.strip() and not line.startswith(("error: ", "note: "))]
    assert len(errors) == 1 and not others, done.stderr
    for bad in ("Traceback", "unexpected", "internal error"):
        assert bad not in done.stderr, done.stderr
    for needle in needles:
        assert needle in errors[0], (needle, errors[0])
    return errors[0]


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under `folder`, by relative path, byte for byte (temp files included, so that none may hide)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def no_temp_files(folder: Path) -> None:
    assert not [p for p in folder.rglob("*") if p.name.endswith(".tmp")], list(folder.rglob("*"))


def dataset(root: Path, n: int = 12) -> Path:
    samples = [{"image": img, "cls": label} for img, label in shapes.classification_samples(n, seed=3)]
    return write_wds(root, samples, classnames=shapes.class_names("en"), templates=["a {c}."])


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return dataset(tmp_path_factory.mktemp("wds") / "data")


@pytest.fixture(scope="module")
def never_loads(tmp_path_factory) -> dict:
    """A model that resolves but cannot load (an empty folder): its error shows whether the model was loaded."""
    root = tmp_path_factory.mktemp("never")
    (root / "empty").mkdir()
    models = root / "models.toml"
    models.write_text(f'[[model]]\nname = "never-loads"\nbackend = "transformers"\nid = "{root / "empty"}"\nlanguages = ["en"]\n')
    return {"CLIPBENCH_MODELS": str(models)}


def never_loaded(done) -> None:
    assert "could not load" not in done.stderr, done.stderr


FOLDERS = ("a/data", "b/data", "数据", "データ")  # two share a base name; two are not ASCII (both were `local`)


@pytest.fixture(scope="module")
def runs(tmp_path_factory, data) -> dict[str, Path]:
    """Real results of the bundled model: all of `data` and of copies of it in FOLDERS (one run), and a
    --limit 6 subset of `data`."""
    out = tmp_path_factory.mktemp("runs")
    copies = [out / "datasets" / name for name in FOLDERS]
    for folder in copies:
        shutil.copytree(data, folder)
    tasks = [arg for folder in (data, *copies) for arg in ("--task", str(folder))]
    full = clipbench("run", *MODEL, *tasks, "--output", str(out / "full"))
    assert full.returncode == 0, full.stderr
    subset = clipbench("run", *MODEL, "--task", str(data), "--output", str(out / "limit6"), "--limit", "6")
    assert subset.returncode == 0, subset.stderr
    found = {"full_run": full, "copies": copies, "full_dir": out / "full"}
    (found["full"],) = [p for p in (out / "full").rglob("*.json") if json.loads(p.read_text())["dataset"]["task_file"] == str(data.resolve())]
    (found["limit6"],) = (out / "limit6").rglob("*.json")
    return found


def folder_of(tmp_path: Path, *files: Path, name: str = "results") -> Path:
    """A results folder holding copies of `files` (kept in subfolders so that equal names do not clash)."""
    folder = tmp_path / name
    for i, file in enumerate(files):
        (folder / str(i)).mkdir(parents=True)
        shutil.copy2(file, folder / str(i) / file.name)
    return folder


class ReadOnly:
    """A folder nobody may write in: chmod for a normal user; root ignores modes, so there the folder is made
    immutable (chattr +i), which binds root too."""

    def __init__(self, folder: Path):
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)

    def __enter__(self):
        if os.geteuid() != 0:
            self.folder.chmod(0o555)
        elif shutil.which("chattr") is None or subprocess.run(["chattr", "+i", str(self.folder)], capture_output=True).returncode:
            pytest.skip("running as root where chattr +i does not work: no way to make a read-only folder")
        return self.folder

    def __exit__(self, *exc):
        if os.geteuid() == 0:
            subprocess.run(["chattr", "-i", str(self.folder)], capture_output=True)
        self.folder.chmod(0o755)


# ---------------------------------------------------------------------------------- 1. unique result paths

def test_plain_names_stay_as_they_were():
    shapes_task = task_registry().get("shapes")
    assert result_file(Path(), "tiny-shapes", None, "shapes", shapes_task.source_file, None, "en", None, None) == \
        Path("tiny-shapes/shapes.en.json")
    assert result_file(Path(), "g", "seed0", "shapes", shapes_task.source_file, None, "pt", None, 3) == Path("g/seed0/shapes.pt.seed3.json")


def test_same_named_and_non_ascii_folders_get_their_own_files(data, runs):
    """Before: `a/data` and `b/data` both wrote data.en.json, and two non-ASCII folders both wrote local.en.json;
    the second silently replaced the first."""
    written = sorted(runs["full_dir"].rglob("*.json"))
    assert len(written) == 5, written
    sources = {json.loads(p.read_text())["dataset"]["task_file"] for p in written}
    assert sources == {str(f.resolve()) for f in (data, *runs["copies"])}
    assert sorted(re.sub(r"\.[0-9a-f]{8}\.", ".HASH.", p.name) for p in written) == \
        ["data.HASH.en.json"] * 3 + ["local.HASH.en.json"] * 2
    printed = re.findall(r"-> (\S+)", runs["full_run"].stderr)
    assert sorted(printed) == [str(p) for p in written]  # each line names its own file
    assert all(result_path(runs["full_dir"], Result.from_disk(p)) == p for p in written)  # planned = named


def test_two_jobs_writing_one_file_are_refused_before_the_model_loads(tmp_path, never_loads):
    models = Path(never_loads["CLIPBENCH_MODELS"])
    clash = tmp_path / "models.toml"
    clash.write_text(models.read_text() + '[[model.checkpoints]]\nname = "seed 0"\n[[model.checkpoints]]\nname = "seed_0"\n')
    out = tmp_path / "out"
    done = clipbench("run", "--model", "never-loads", "--task", "shapes", "--output", str(out),
                     env={"CLIPBENCH_MODELS": str(clash)})
    assert_clean(done, 2, "two jobs of this run would write", str(out / "never-loads" / "seed_0" / "shapes.en.json"),
                 "seed 0: task 'shapes' [en]", "seed_0: task 'shapes' [en]", "different --output")
    never_loaded(done)
    assert not out.exists()


def test_a_file_of_another_measurement_is_not_replaced(tmp_path, data, runs, never_loads):
    """`--group "a b"` and `--group a_b` share a folder name; the earlier result stays."""
    out = tmp_path / "out"
    path = out / result_name("a b", "never-loads", "data", str(data.resolve()), None, "en", None, None)
    path.parent.mkdir(parents=True)
    earlier = json.loads(runs["full"].read_text())
    earlier["model"].update(group="a_b", checkpoint_name="never-loads")
    path.write_text(json.dumps(earlier))
    before = snapshot(out)
    done = clipbench("run", "--model", "never-loads", "--group", "a b", "--task", str(data), "--output", str(out), env=never_loads)
    assert_clean(done, 2, str(path), "holds another measurement", "group 'a_b'", "group 'a b'", "choose another --output")
    never_loaded(done)
    assert snapshot(out) == before


# ------------------------------------------------------------------------------------ 2. comparable results

def test_full_and_subset_runs_are_not_averaged(tmp_path, runs):
    """Before: `table` printed the mean of the full run and the --limit run as one cell (96.00 ± 2.00)."""
    mixed = folder_of(tmp_path, runs["full"], runs["limit6"])
    done = clipbench("table", str(mixed))
    assert_clean(done, 1, "refusing to average", "--limit differ", "none", "6 images, seed 0", "--force")
    assert done.stdout == ""
    forced = clipbench("table", str(mixed), "--force")
    assert forced.returncode == 0 and "±" in forced.stdout
    limit8 = json.loads(runs["limit6"].read_text())
    limit8["limit"]["n"], limit8["dataset"]["fingerprint"] = 8, "another subset"
    subsets = folder_of(tmp_path, runs["limit6"], name="subsets")
    write_atomic(subsets / "limit8.json", limit8)
    assert_clean(clipbench("table", str(subsets)), 1, "--limit differ", "6 images", "8 images")


def test_plot_and_baseline_refuse_them_too(tmp_path, runs):
    mixed = folder_of(tmp_path, runs["full"], runs["limit6"])
    plots = tmp_path / "plots"
    assert_clean(clipbench("plot", str(mixed), "--output", str(plots)), 1, "refusing to average", "--force")
    assert not plots.exists() or not list(plots.iterdir())
    baseline = tmp_path / "baseline.json"
    assert_clean(clipbench("baseline", "save", str(mixed), "--output", str(baseline)), 1, "refusing to average",
                 "evaluated alike")
    assert not baseline.exists()


def test_compare_refuses_a_mixed_run_and_flags_a_subset_against_a_full_baseline(tmp_path, runs):
    full = folder_of(tmp_path, runs["full"], name="full")
    baseline = tmp_path / "baseline.json"
    assert clipbench("baseline", "save", str(full), "--output", str(baseline)).returncode == 0
    mixed = folder_of(tmp_path, runs["full"], runs["limit6"], name="mixed")
    assert_clean(clipbench("compare", str(mixed), "--baseline", str(baseline)), 2, "refusing to average")
    subset = folder_of(tmp_path, runs["limit6"], name="subset")
    done = clipbench("compare", str(subset), "--baseline", str(baseline))
    assert done.returncode == 1 and "NOT COMPARABLE" in done.stdout and "improved" not in done.stdout, done.stdout
    assert "Traceback" not in done.stderr


# ------------------------------------------------------------------------------------------ 4. empty baseline

def test_an_empty_baseline_is_bad_input(tmp_path, runs):
    current = folder_of(tmp_path, runs["full"])
    empty = tmp_path / "empty"
    empty.mkdir()
    assert_clean(clipbench("compare", str(current), "--baseline", str(empty)), 2, str(empty), "holds no result files")
    no_entries = tmp_path / "none.json"
    no_entries.write_text(json.dumps({"schema_version": 1, "kind": "clipbench-baseline", "entries": []}))
    assert_clean(clipbench("compare", str(current), "--baseline", str(no_entries)), 2, str(no_entries), "has no entries",
                 "baseline save")


def test_a_run_with_none_of_the_baseline_fails(tmp_path, runs):
    base = folder_of(tmp_path, runs["full"], name="base")
    baseline = tmp_path / "baseline.json"
    assert clipbench("baseline", "save", str(base), "--output", str(baseline)).returncode == 0
    other = json.loads(runs["full"].read_text())
    other["model"]["group"] = other["model"]["name"] = "someone-else"
    current = tmp_path / "current"
    write_atomic(current / "other.json", other)
    empty = tmp_path / "nothing"
    empty.mkdir()
    for run in (current, empty):
        done = clipbench("compare", str(run), "--baseline", str(baseline))
        assert_clean(done, 1, "has none of the 1 entries", str(baseline))
        assert "none of the baseline's 1 entries" in done.stdout


# ------------------------------------------------------------------------ 7, 8. files that are not results

def test_a_baseline_saved_in_the_results_folder_is_skipped_with_a_note(tmp_path, runs):
    """Before: `unexpected KeyError`, and compare exited 1 (the regression code)."""
    folder = folder_of(tmp_path, runs["full"])
    baseline = folder / "baseline.json"
    assert clipbench("baseline", "save", str(folder), "--output", str(baseline)).returncode == 0
    note = f"note: skipped {baseline}: a baseline file"
    table = clipbench("table", str(folder))
    assert table.returncode == 0 and table.stderr.strip() == note + " ('clipbench baseline save'), not a result file; pass it as --baseline"
    compared = clipbench("compare", str(folder), "--baseline", str(baseline))
    assert compared.returncode == 0 and "PASS" in compared.stdout and note in compared.stderr, compared.stderr
    assert_clean(clipbench("table", str(baseline)), 1, str(baseline), "a baseline file", "--baseline")


def _broken(result: dict, change) -> dict:
    result = json.loads(json.dumps(result))
    change(result)
    return result


HOSTILE = {
    "no model": (lambda r: r.pop("model"), "field 'model': missing"),
    "no main metric": (lambda r: r["metrics"].pop("acc1"), "field 'metrics.acc1': missing"),
    "model not an object": (lambda r: r.update(model="tiny"), "field 'model'"),
    "metric not a number": (lambda r: r["metrics"].update(acc1="high"), "field 'metrics.acc1'"),
    "no fingerprint": (lambda r: r["dataset"].pop("fingerprint"), "field 'dataset.fingerprint': missing"),
    "schema_version text": (lambda r: r.update(schema_version="1"), "field 'schema_version'"),
    # before the typed record these two were read as version 1
    "schema_version true": (lambda r: r.update(schema_version=True), "field 'schema_version': not an integer"),
    "schema_version 0": (lambda r: r.update(schema_version=0), "schema_version 0 was never written by clipbench"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hand_made_result_files_name_the_file_and_field(tmp_path, runs, case):
    change, needle = HOSTILE[case]
    folder = tmp_path / "results"
    write_atomic(folder / "bad.json", _broken(json.loads(runs["full"].read_text()), change))
    for command, code in (("table", 1), ("compare", 2)):
        extra = ("--baseline", str(folder)) if command == "compare" else ()
        done = clipbench(command, str(folder), *extra)
        fix = "regenerate it with 'clipbench run'"
        assert_clean(done, code, str(folder / "bad.json"), needle, fix)


def test_baseline_entries_are_checked(tmp_path, runs):
    current = folder_of(tmp_path, runs["full"])
    baseline = tmp_path / "baseline.json"
    assert clipbench("baseline", "save", str(current), "--output", str(baseline)).returncode == 0
    payload = json.loads(baseline.read_text())
    del payload["entries"][0]["value"]
    baseline.write_text(json.dumps(payload))
    assert_clean(clipbench("compare", str(current), "--baseline", str(baseline)), 2, str(baseline),
                 "entries[0]: field 'value': missing", "baseline save")


def test_broken_json_and_stray_files(tmp_path, runs):
    folder = folder_of(tmp_path, runs["full"])
    (folder / "config.json").write_text(json.dumps({"colour": "blue"}))
    (folder / "list.json").write_text("[1, 2]")
    done = clipbench("table", str(folder))
    assert done.returncode == 0, done.stderr
    assert sorted(done.stderr.splitlines()) == [f"note: skipped {folder / n}: no schema_version; not a clipbench result file"
                                                for n in ("config.json", "list.json")]
    (folder / "cut.json").write_text('{"schema_version": 1, "task": ')
    assert_clean(clipbench("table", str(folder)), 1, str(folder / "cut.json"), "not readable as JSON", "regenerate or remove")


# ----------------------------------------------------------------------------------- 5. unwritable outputs

def test_run_checks_its_output_before_the_model_loads(tmp_path, data, never_loads):
    in_the_way = tmp_path / "file"
    in_the_way.write_text("keep me")
    run = ("run", "--model", "never-loads", "--task", str(data), "--output")
    done = clipbench(*run, str(in_the_way / "out"), env=never_loads)
    assert_clean(done, 1, f"{in_the_way} is a file, not a folder", "choose another --output")
    never_loaded(done)
    assert in_the_way.read_text() == "keep me"

    out = tmp_path / "out"
    blocked = out / result_name("never-loads", None, "data", str(data.resolve()), None, "en", None, None)
    blocked.mkdir(parents=True)
    done = clipbench(*run, str(out), env=never_loads)
    assert_clean(done, 1, f"{blocked} is a folder", "remove it or choose another --output")
    never_loaded(done)

    with ReadOnly(tmp_path / "locked") as locked:
        done = clipbench(*run, str(locked / "out"), env=never_loads)
        assert_clean(done, 1, f"cannot write in {locked}", "make it writable or choose another --output")
        never_loaded(done)
        assert not list(locked.iterdir())


def test_table_plot_compare_and_baseline_check_their_output_first(tmp_path, runs):
    """A broken results folder would fail the reading: the output error shows that the check came first."""
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "cut.json").write_text("{")
    folder_out = tmp_path / "a-folder"
    folder_out.mkdir()
    file_out = tmp_path / "a-file"
    file_out.write_text("keep me")
    assert_clean(clipbench("table", str(broken), "--output", str(folder_out)), 1, f"--output {folder_out} is a folder")
    assert_clean(clipbench("plot", str(broken), "--output", str(file_out / "plots")), 1, f"{file_out} is a file, not a folder")
    assert_clean(clipbench("baseline", "save", str(broken), "--output", str(folder_out)), 1, f"--output {folder_out} is a folder")
    assert_clean(clipbench("compare", str(broken), "--baseline", str(broken), "--summary", str(folder_out)), 2,
                 f"--summary {folder_out} is a folder")
    with ReadOnly(tmp_path / "locked") as locked:
        assert_clean(clipbench("table", str(broken), "--output", str(locked / "t.md")), 1, f"cannot write in {locked}")
        assert_clean(clipbench("baseline", "save", str(broken), "-o", str(locked / "sub" / "b.json")), 1, f"cannot write in {locked}")
    assert file_out.read_text() == "keep me" and not list(folder_out.iterdir())
    # and with good input the same commands write their files whole
    results = folder_of(tmp_path, runs["full"])
    table = tmp_path / "new" / "table.md"
    assert clipbench("table", str(results), "--output", str(table)).returncode == 0 and table.read_text().startswith("| Model")
    plots = tmp_path / "plots"
    assert clipbench("plot", str(results), "--output", str(plots)).returncode == 0
    assert sorted(p.name for p in plots.iterdir()) == ["bar_data_en.png", "heatmap.png"]


def test_a_write_that_fails_after_the_work_names_the_path_and_changes_nothing(tmp_path, data, runs):
    """A full disk, simulated with a file-size limit below the size of a result file: the rerun's write fails
    after the compute (--overwrite: else the finished job would be skipped), and the earlier result of that same
    measurement stays as it was. (The embedding cache's own failed write is a warning: test_cache.)"""
    import resource

    out = tmp_path / "out"
    path = out / runs["full"].relative_to(runs["full"].parents[1])
    path.parent.mkdir(parents=True)
    shutil.copy2(runs["full"], path)
    before = snapshot(out)

    def small_files():
        resource.setrlimit(resource.RLIMIT_FSIZE, (1024, 1024))

    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-m", "benchmark.cli", "run", *MODEL, "--task", str(data), "--output", str(out),
                           "--overwrite", "--no-cache"], capture_output=True, text=True, env=env, preexec_fn=small_files,
                          timeout=600)
    assert_clean(done, 1, f"cannot write {path}", "File too large", "nothing was changed", "choose another --output")
    assert snapshot(out) == before


def test_write_atomic_on_a_full_disk(tmp_path, monkeypatch):
    path = tmp_path / "r" / "result.json"
    write_atomic(path, {"old": True})
    before = path.read_bytes()

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(ClipbenchError) as info:
        write_atomic(path, {"new": True})
    assert str(path) in str(info.value) and "free some space" in str(info.value)
    assert path.read_bytes() == before and [p.name for p in path.parent.iterdir()] == ["result.json"]


def test_result_files_follow_the_umask(tmp_path):
    old = os.umask(0o027)
    try:
        path = write_atomic(tmp_path / "r.json", {"a": 1})
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o640  # was 0600 (mkstemp's), whatever the umask


# ----------------------------------------------------------------------------------- 10. option checks

def test_a_negative_seed_and_a_text_field_without_pair_task_are_refused_first(tmp_path, never_loads):
    out = tmp_path / "out"
    seed = clipbench("run", "--model", "never-loads", "--task", "shapes", "--seed", "-1", "--output", str(out), env=never_loads)
    assert_clean(seed, 2, "--seed must be 0 or more")
    field = clipbench("run", "--model", "never-loads", "--task", "shapes", "--text-field", "summary", "--output", str(out),
                      env=never_loads)
    assert_clean(field, 2, "--text-field applies to pair-scoring tasks", "shapes", "drop --text-field")
    assert not out.exists()


# ------------------------------------------------------------------------------ concurrent and killed runs

def test_two_concurrent_runs_into_one_folder(tmp_path, data, runs):
    """A full run and a --limit 8 run at once, into a folder that holds a --limit 6 result: three files."""
    out = tmp_path / "out"
    earlier = out / runs["limit6"].relative_to(runs["limit6"].parents[1])
    earlier.parent.mkdir(parents=True)
    shutil.copy2(runs["limit6"], earlier)
    before = earlier.read_bytes()
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    command = [sys.executable, "-m", "benchmark.cli", "run", *MODEL, "--task", str(data), "--output", str(out)]
    procs = [subprocess.Popen(command + extra, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for extra in ([], ["--limit", "8"])]
    for proc in procs:
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err.decode()
    written = sorted(p.name for p in earlier.parent.iterdir())
    assert [re.sub(r"\.[0-9a-f]{8}\.", ".", n) for n in written] == \
        ["data.en.json", "data.en.limit6.seed0.json", "data.en.limit8.seed0.json"]
    for path in earlier.parent.iterdir():
        result = json.loads(path.read_text())
        assert result["metrics"]["acc1"] is not None
    assert earlier.read_bytes() == before
    no_temp_files(out)


def test_a_run_killed_mid_way_leaves_nothing_half_done_and_reruns(tmp_path, data, runs):
    out = tmp_path / "out"
    earlier = out / "tiny-shapes" / runs["limit6"].name
    earlier.parent.mkdir(parents=True)
    shutil.copy2(runs["limit6"], earlier)
    before = snapshot(out)
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    # the small dataset first; the 400 shapes at batch size 1 then take many seconds to embed
    command = [sys.executable, "-m", "benchmark.cli", "run", *MODEL, "--task", str(data), "--task", "shapes",
               "--language", "en", "--batch-size", "1", "--output", str(out)]
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seen = []
    while not seen or ("->" not in seen[-1] and seen[-1]):  # the first job's result line: the second job has begun
        seen.append(proc.stderr.readline())
    first = seen[-1]
    assert "->" in first, "".join(seen) + proc.stderr.read()
    time.sleep(0.5)
    assert proc.poll() is None, "the run ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    no_temp_files(out)
    after = snapshot(out)
    done_first = Path(first.split("-> ")[1].strip())
    assert set(after) == set(before) | {str(done_first.relative_to(out))}  # the finished job's file, nothing of the killed one
    assert {k: after[k] for k in before} == before
    assert json.loads(done_first.read_text())["metrics"]["acc1"] is not None
    rerun = clipbench("run", *MODEL, "--task", str(data), "--task", "shapes", "--language", "en", "--output", str(out))
    assert rerun.returncode == 0, rerun.stderr
    assert (out / "tiny-shapes" / "shapes.en.json").is_file()
    assert earlier.read_bytes() == before[str(earlier.relative_to(out))]
    no_temp_files(out)
