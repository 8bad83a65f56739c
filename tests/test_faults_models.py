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
from helpers import clipbench, read_results, write_wds
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
