"""Fault injection for the command line's entry point, task resolution, model loading and devices: bad
checkpoints of every kind, a malicious pickle, task files, suite typos, bad devices, Ctrl-C, and the catch-all
that reports bugs. Each bad case: its exit code, one `error: ` line naming the file and the fix, no traceback,
no `unexpected` / `internal error`, no result file."""

from __future__ import annotations

import json
import os
import pickle
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from benchmark import cli
from benchmark.data import shapes
from benchmark.paths import data_dir, weights_dir
from helpers import clipbench_here as clipbench, read_results, write_wds
from test_errors import assert_clean_failure

ARCH = "ViT-B-32"  # any open_clip architecture: a checkpoint is refused before its weights are compared


def assert_clean(done, code, *needles, out=None):
    assert_clean_failure(done, code, *needles, out=out)
    assert "unexpected" not in done.stderr and "internal error" not in done.stderr, done.stderr
    if out is not None:  # nothing at all under the output folder: no result, no temporary file
        assert not out.exists() or not any(p.is_file() for p in out.rglob("*")), list(out.rglob("*"))


def run(*args, out, env=None, cwd=None):
    return clipbench("run", *args, "--language", "en", "--output", str(out), "--num-workers", "0", env=env, cwd=cwd)


@pytest.fixture
def main(monkeypatch, capsys):
    """The command line's own main() in this process (no interpreter start per case), as a finished process."""
    monkeypatch.setenv("CLIPBENCH_DATA_ROOT", os.environ.get("CLIPBENCH_DATA_ROOT", ""))  # `run` may set it

    def call(*args: str) -> subprocess.CompletedProcess:
        monkeypatch.setattr(sys, "argv", ["clipbench", *args])
        with pytest.raises(SystemExit) as exit_:
            cli.main()
        captured = capsys.readouterr()
        return subprocess.CompletedProcess(args, exit_.value.code, captured.out, captured.err)

    return call


@pytest.fixture
def tiny_task(tmp_path):
    """A task of 4 drawn images: a run that fails on its model fails without drawing the bundled 400."""
    return str(write_task(tmp_path / "tiny-task", "my-tiny", size=4))


# ---------------------------------------------------------------- checkpoints

def tiny_state_dict() -> dict:
    return load_file(str(weights_dir("tiny-shapes") / "open_clip_model.safetensors"))


def write_pt(path: Path) -> Path:
    torch.save(tiny_state_dict(), path)
    return path


def cut(path: Path, keep: float | int) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)] if isinstance(keep, float) else data[:keep])
    return path


def bad_checkpoint(folder: Path, kind: str) -> tuple[Path, str]:
    """A broken weights file of `kind`, and the words the error must use."""
    folder.mkdir(parents=True, exist_ok=True)
    if kind == "empty.pt":
        path = folder / "model.pt"
        path.write_bytes(b"")
        return path, "is empty (0 bytes)"
    if kind == "truncated.pt":
        return cut(write_pt(folder / "model.pt"), 0.5), "truncated or corrupt"
    if kind == "garbage.pt":
        path = folder / "model.pt"
        path.write_bytes(random.Random(0).randbytes(4096))
        return path, "not a PyTorch weights file"
    if kind == "tensor.pt":
        path = folder / "model.pt"
        torch.save(torch.zeros(3), path)
        return path, "not a state_dict of tensors"
    path = folder / "model.safetensors"
    if kind == "empty.safetensors":
        path.write_bytes(b"")
        return path, "is empty (0 bytes)"
    save_file(tiny_state_dict(), str(path))
    if kind == "truncated.safetensors":
        return cut(path, 0.5), "not a complete safetensors file"
    if kind == "garbage.safetensors":
        path.write_bytes(random.Random(0).randbytes(4096))
        return path, "not a complete safetensors file"
    raise AssertionError(kind)


KINDS = ["empty.pt", "truncated.pt", "garbage.pt", "tensor.pt", "empty.safetensors", "truncated.safetensors",
         "garbage.safetensors"]


def test_empty_pt_given_as_pretrained(tmp_path, tiny_task):
    """Was `Aborted.` with no file named: an EOFError that the CLI framework turned into an abort."""
    path, problem = bad_checkpoint(tmp_path / "ckpt", "empty.pt")
    out = tmp_path / "out"
    done = run("--model", ARCH, "--pretrained", str(path), "--task", tiny_task, out=out)
    assert_clean(done, 1, f"checkpoint {path}", problem, "re-download or re-save it", out=out)


def local_dir(tmp_path: Path, weights: str, kind: str) -> tuple[Path, Path, str]:
    """The bundled tiny-shapes folder (open_clip's hub layout) with its weights replaced by a broken file."""
    folder = tmp_path / "model"
    shutil.copytree(weights_dir("tiny-shapes"), folder)
    (folder / "open_clip_model.safetensors").unlink()
    broken, problem = bad_checkpoint(tmp_path / "broken", kind)
    target = folder / weights
    broken.rename(target)
    return folder, target, problem


@pytest.mark.parametrize("kind", KINDS)
def test_bad_checkpoint_in_a_local_dir(tmp_path, tiny_task, main, kind):
    weights = "open_clip_model.safetensors" if kind.endswith(".safetensors") else "open_clip_pytorch_model.bin"
    folder, target, problem = local_dir(tmp_path, weights, kind)
    out = tmp_path / "out"
    done = main("run", "--model", f"local-dir:{folder}", "--task", tiny_task, "--output", str(out), "-j", "0")
    fix = "state_dict" if kind == "tensor.pt" else "re-download or re-save it"
    assert_clean(done, 1, f"checkpoint {target}", problem, fix, out=out)


def test_local_dir_without_weights_is_refused(tmp_path, tiny_task, main):
    """open_clip would go on with randomly initialised weights: a silent wrong number."""
    folder = tmp_path / "model"
    shutil.copytree(weights_dir("tiny-shapes"), folder)
    (folder / "open_clip_model.safetensors").unlink()
    out = tmp_path / "out"
    done = main("run", "--model", f"local-dir:{folder}", "--task", tiny_task, "--output", str(out))
    assert_clean(done, 2, str(folder), "has no weights file", "add the checkpoint", out=out)


def test_bad_checkpoint_in_the_hub_cache(tmp_path, tiny_task):
    import standins

    cache = tmp_path / "hub"
    standins.open_clip_vit(cache, "someone/tiny-clip")
    [weights] = cache.glob("models--someone--tiny-clip/snapshots/*/open_clip_model.safetensors")
    cut(weights, 0.5)
    out = tmp_path / "out"
    done = run("--model", "hf-hub:someone/tiny-clip", "--task", tiny_task, out=out, env={"HF_HUB_CACHE": str(cache)})
    assert_clean(done, 1, f"checkpoint {weights}", "not a complete safetensors file", "re-download", out=out)


def test_bad_checkpoint_of_a_registered_model(tmp_path, tiny_task):
    path, problem = bad_checkpoint(tmp_path / "ckpt", "truncated.safetensors")
    specs = tmp_path / "models.toml"
    specs.write_text(f'[[model]]\nname = "mine"\nbackend = "open_clip"\nid = "{ARCH}"\npretrained = "{path}"\n'
                     'languages = ["en"]\n')
    out = tmp_path / "out"
    done = run("--model", "mine", "--task", tiny_task, out=out, env={"CLIPBENCH_MODELS": str(specs)})
    assert_clean(done, 1, f"checkpoint {path}", problem, "re-download or re-save it", out=out)


class Payload:
    """Unpickling this would create `marker`."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return open, (str(self.marker), "w")


def malicious_pickle(path: Path, marker: Path, how: str) -> Path:
    checkpoint = {"state_dict": tiny_state_dict(), "extra": Payload(marker)}
    if how == "torch.save":
        torch.save(checkpoint, path)
    else:
        with open(path, "wb") as handle:
            pickle.dump(checkpoint, handle)
    return path


PICKLE_NEEDLES = ("not a plain weights file", "pickled Python objects", "save_file", "torch.save(state_dict)")


def test_malicious_pickle_never_runs(tmp_path, tiny_task):
    marker = tmp_path / "payload-ran"
    path = malicious_pickle(tmp_path / "model.pt", marker, "torch.save")
    out = tmp_path / "out"
    done = run("--model", ARCH, "--pretrained", str(path), "--task", tiny_task, out=out)
    assert_clean(done, 1, f"checkpoint {path}", *PICKLE_NEEDLES, out=out)
    assert "weights_only" not in done.stderr
    assert not marker.exists()


def test_plain_pickle_in_a_local_dir_never_runs(tmp_path, tiny_task, main):
    folder = tmp_path / "model"
    shutil.copytree(weights_dir("tiny-shapes"), folder)
    (folder / "open_clip_model.safetensors").unlink()
    marker = tmp_path / "payload-ran"
    path = malicious_pickle(folder / "open_clip_pytorch_model.bin", marker, "pickle.dump")
    out = tmp_path / "out"
    done = main("run", "--model", f"local-dir:{folder}", "--task", tiny_task, "--output", str(out))
    assert_clean(done, 1, f"checkpoint {path}", *PICKLE_NEEDLES, out=out)
    assert "weights_only" not in done.stderr
    assert not marker.exists()


# ---------------------------------------------------------------- task files

def task_text(name: str, size: int = 8, **dataset) -> str:
    """A classification task file like the bundled `shapes`, drawn at run time unless `dataset` says otherwise."""
    fields = dataset or {"format": "shapes", "size": size, "seed": 7}
    lines = "\n".join(f"{key} = {json.dumps(value)}" for key, value in fields.items())
    return (f'name = "{name}"\nkind = "classification"\ndescription = "mine"\nlanguages = ["en"]\nsplit = "test"\n'
            'metrics = ["acc1", "acc5"]\nmain_score = "acc1"\nprompts = "shapes"\nnum_classes = 16\n'
            f"\n[dataset]\n{lines}\n")


def write_task(folder: Path, name: str, **kwargs) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.toml"
    path.write_text(task_text(name, **kwargs), encoding="utf-8")
    return path


def test_task_file_given_to_task(tmp_path):
    path = write_task(tmp_path / "mine", "my-shapes")
    out = tmp_path / "out"
    done = run("--model", "tiny-shapes", "--task", str(path), out=out)
    assert done.returncode == 0, done.stderr
    [result] = read_results(out)
    assert result["task"] == "my-shapes" and result["dataset"]["n_images"] == 8
    assert result["dataset"]["task_file"] == str(path)


def test_folder_of_task_files(tmp_path, main):
    folder = tmp_path / "mine"
    write_task(folder, "my-a", size=6)
    write_task(folder / "more", "my-b", size=7)
    out = tmp_path / "out"
    done = main("run", "--model", "tiny-shapes", "--task", str(folder), "-l", "en", "-o", str(out), "-j", "0")
    assert done.returncode == 0, done.stderr
    assert {r["task"]: r["dataset"]["n_images"] for r in read_results(out)} == {"my-a": 6, "my-b": 7}


def test_clipbench_tasks_joins_the_registry(tmp_path):
    single = write_task(tmp_path / "one", "my-single", size=5)
    folder = tmp_path / "many"
    write_task(folder, "my-folder", size=6)
    (folder / "suites").mkdir()
    (folder / "suites" / "my-suite.toml").write_text('name = "my-suite"\ndescription = "x"\ntasks = ["my-folder", "my-single"]\n')
    env = {"CLIPBENCH_TASKS": os.pathsep.join([str(single), str(folder)])}
    listed = clipbench("list", "tasks", "--filter", "my-*", env=env)
    assert listed.returncode == 0, listed.stderr
    assert "my-single" in listed.stdout and "my-folder" in listed.stdout
    out = tmp_path / "out"
    done = run("--model", "tiny-shapes", "--task", "my-suite", "--task", str(single), out=out, env=env)
    assert done.returncode == 0, done.stderr
    assert sorted(r["task"] for r in read_results(out)) == ["my-folder", "my-single"]  # the file named twice runs once


def test_relative_dataset_path_of_a_task_file_is_under_the_data_root(tmp_path, main, monkeypatch):
    samples = [{"image": image, "cls": label} for image, label in shapes.classification_samples(6, seed=5)]
    root = tmp_path / "data"
    write_wds(root / "my-wds", samples, classnames=shapes.class_names("en"), templates=["a {c}."])
    path = write_task(tmp_path / "tasks", "my-wds", format="wds", path="my-wds")
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")  # not where the dataset is
    out = tmp_path / "out"
    done = main("run", "--model", "tiny-shapes", "--task", str(path), "--data-root", str(root), "-l", "en",
                "-o", str(out), "-j", "0")
    assert done.returncode == 0, done.stderr
    [result] = read_results(out)
    assert result["dataset"]["n_images"] == 6 and str(root / "my-wds") in result["dataset"]["location"]


def test_missing_task_file(tmp_path):
    out = tmp_path / "out"
    done = run("--model", "tiny-shapes", "--task", str(tmp_path / "nope.toml"), out=out)
    assert_clean(done, 2, f"task file {tmp_path / 'nope.toml'} does not exist", "check the --task path", out=out)


def test_a_file_that_is_not_a_task_file(tmp_path, main):
    path = tmp_path / "notes.txt"
    path.write_text("hello")
    out = tmp_path / "out"
    done = main("run", "--model", "tiny-shapes", "--task", str(path), "-o", str(out))
    assert_clean(done, 2, str(path), "not a task file (*.toml)", out=out)


def test_task_file_that_reuses_a_bundled_name(tmp_path, main, monkeypatch):
    path = write_task(tmp_path / "mine", "shapes")
    out = tmp_path / "out"
    done = main("run", "--model", "tiny-shapes", "--task", str(path), "-o", str(out))
    bundled = str(data_dir("tasks") / "shapes.toml")
    assert_clean(done, 1, str(path), "task 'shapes' is already defined in", bundled, "another name", out=out)
    monkeypatch.setenv("CLIPBENCH_TASKS", str(path.parent))
    assert_clean(main("list", "tasks"), 1, str(path), "task 'shapes' is already defined in", bundled, "another name")


@pytest.mark.parametrize("how", ["--task", "CLIPBENCH_TASKS"])
def test_malformed_task_file_names_the_file_and_the_field(tmp_path, main, monkeypatch, how):
    path = write_task(tmp_path / "mine", "my-bad")
    path.write_text(path.read_text().replace('split = "test"', 'split = "test"\ncolour = "red"'))
    if how == "CLIPBENCH_TASKS":
        monkeypatch.setenv("CLIPBENCH_TASKS", str(path.parent))
    out = tmp_path / "out"
    done = main("run", "--model", "tiny-shapes", "--task", str(path) if how == "--task" else "shapes", "-o", str(out))
    assert_clean(done, 1, str(path), "field 'colour': unknown key", out=out)


def test_task_file_not_in_utf8(tmp_path, main):
    path = tmp_path / "my-latin.toml"
    path.write_bytes(task_text("my-latin").replace("mine", "café").encode("latin-1"))
    out = tmp_path / "out"
    done = main("run", "--model", "tiny-shapes", "--task", str(path), "-o", str(out))
    assert_clean(done, 1, str(path), "not UTF-8", "save it as UTF-8", out=out)


def test_clipbench_tasks_naming_a_missing_path(tmp_path, main, monkeypatch):
    monkeypatch.setenv("CLIPBENCH_TASKS", str(tmp_path / "gone"))
    assert_clean(main("list", "tasks"), 1, f"CLIPBENCH_TASKS names {tmp_path / 'gone'}, which does not exist", "unset")


def test_suite_typo_suggests_the_suite(tmp_path):
    out = tmp_path / "out"
    done = run("--model", "tiny-shapes", "--task", "elevatr", out=out)
    assert_clean(done, 2, "Unknown task 'elevatr'", "Did you mean: elevater", "clipbench list suites", out=out)


@pytest.mark.parametrize("typo, suggestion", [("bundeld", "bundled"), ("shapez", "shapes")])
def test_typo_suggests_tasks_and_suites(tmp_path, main, typo, suggestion):
    out = tmp_path / "out"
    done = main("run", "--model", "tiny-shapes", "--task", typo, "-o", str(out))
    assert_clean(done, 2, f"Unknown task '{typo}'", f"Did you mean: {suggestion}", out=out)


# ---------------------------------------------------------------- devices

NO_GPU = pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")


@NO_GPU
def test_cuda_without_a_gpu(tmp_path):
    out = tmp_path / "out"
    done = run("--model", "tiny-shapes", "--task", "shapes", "--device", "cuda:0", out=out)
    assert_clean(done, 2, "--device cuda:0", "no CUDA device is available", "--device cpu or auto", out=out)


@pytest.mark.parametrize("device", ["cuda", "tpu", "cuda:x", "gpu"])
def test_bad_device_in_process(tmp_path, main, device):
    if device == "cuda" and torch.cuda.is_available():
        pytest.skip("needs a machine without a GPU")
    out = tmp_path / "out"
    done = main("run", "--model", "tiny-shapes", "--task", "shapes", "--device", device, "-o", str(out))
    needles = (["no CUDA device is available", "--device cpu or auto"] if device == "cuda" else
               [f"unknown --device '{device}'", "use auto, cpu, cuda or cuda:N"])
    assert_clean(done, 2, *needles, out=out)


def test_a_gpu_number_beyond_those_present(tmp_path, main, monkeypatch):
    """One GPU (as torch reports it here): cuda:7 is refused before any work, naming the devices there are."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    out = tmp_path / "out"
    done = main("run", "--model", "tiny-shapes", "--task", "shapes", "--device", "cuda:7", "--output", str(out))
    assert_clean(done, 2, "--device cuda:7: torch sees 1 CUDA device (cuda:0)", "pick one of those", out=out)


# ---------------------------------------------------------------- Ctrl-C

def workers_of(pid: int) -> list[int]:
    """Child processes running the parent's own program (forked, not exec'd): DataLoader workers, and for an
    instant any subprocess before its exec, which is why the test waits for two at once."""
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:  # it has ended
        return []
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            if parent == pid and (stat.parent / "cmdline").read_bytes() == command:
                found.append(int(stat.parent.name))
        except (OSError, IndexError, ValueError):
            continue
    return found


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds the DataLoader workers through /proc")
def test_ctrl_c_while_workers_start(tmp_path):
    """Ctrl-C goes to the whole foreground process group, workers included, as a terminal sends it."""
    out = tmp_path / "out"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "benchmark.cli", "run", "--model", "tiny-shapes", "--task", "shapes",
                             "--language", "en", "--batch-size", "8", "-j", "2", "--output", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while len(workers_of(proc.pid)) < 2:  # both workers have been forked, and are starting
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.005)
        os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, err
    assert err.strip() == "interrupted", err
    assert not out.exists() or not any(p.is_file() for p in out.rglob("*"))


# ---------------------------------------------------------------- the catch-all

def test_a_bug_is_reported_as_an_internal_error(main, monkeypatch):
    from benchmark import listing

    def broken(pattern):
        raise RuntimeError("list index went wrong\nsecond line")

    monkeypatch.setattr(listing, "list_tasks", broken)
    done = main("list", "tasks")
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr == ("error: internal error, please report: RuntimeError: list index went wrong "
                   "(re-run with --debug for the traceback)\n")
    monkeypatch.setattr(sys, "argv", ["clipbench", "list", "tasks", "--debug"])
    with pytest.raises(RuntimeError, match="list index went wrong"):
        cli.main()


@pytest.mark.parametrize("raised", [EOFError(), KeyboardInterrupt()])
def test_eof_and_interrupt_are_not_a_silent_abort(main, monkeypatch, raised):
    """click's standalone mode would print a bare 'Aborted!' (exit 1) for both, even with --debug."""
    from benchmark import listing

    def broken(pattern):
        raise raised

    monkeypatch.setattr(listing, "list_tasks", broken)
    done = main("list", "tasks")
    code, err = done.returncode, done.stderr
    assert "Aborted" not in err
    if isinstance(raised, EOFError):
        assert code == 1 and err.startswith("error: internal error, please report: EOFError"), err
    else:
        assert code == 130 and err == "interrupted\n"


def test_exit_codes_of_the_framework_are_kept(main, monkeypatch):
    import typer

    from benchmark import listing

    done = main("--help")
    assert done.returncode == 0 and "Usage" in done.stdout
    done = main("run", "--no-such-option")
    assert done.returncode == 2 and "No such option" in done.stderr and "error: " not in done.stderr
    done = main("list", "nothing")
    assert done.returncode == 2 and "Invalid value" in done.stderr

    def leave(pattern):
        raise typer.Exit(3)

    monkeypatch.setattr(listing, "list_tasks", leave)
    done = main("list", "tasks")
    assert done.returncode == 3 and done.stderr == ""
