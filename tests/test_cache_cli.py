"""The embedding cache through the command line, with the bundled model: resume after SIGKILL, two runs sharing
an output folder and a cache, a corrupt entry, an unwritable cache, --no-cache, and `clipbench cache list|clear`."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from benchmark.results import Result
from helpers import clipbench_here as clipbench
from test_errors import assert_clean_failure

ROOT = Path(__file__).resolve().parents[1]
# 400 images in chunks of 64 (whole batches of 16): seven chunks
SHAPES = ("run", "--model", "tiny-shapes", "--task", "shapes", "--language", "en", "--num-workers", "0",
          "--batch-size", "16", "--cache-chunk-size", "64")
STOP_AT = 192  # the run below is killed while it embeds the chunk that starts here: three chunks are done

# The command line, with the image loop blocking (it says so on stdout) once it reaches image STOP_AT, so that
# the test kills it at a known point rather than at a moment.
BLOCKING = """
import sys, time
import benchmark.embed as embed

real = embed.embed_images

def blocking(*args, indices, **kwargs):
    if indices.start >= STOP_AT:
        print("blocked at", indices.start, flush=True)
        time.sleep(600)
    return real(*args, indices=indices, **kwargs)

embed.embed_images = blocking
from benchmark.cli import main
sys.argv[0] = "clipbench"
main()
""".replace("STOP_AT", str(STOP_AT))


def env_for(cache: Path) -> dict:
    return {"CLIPBENCH_CACHE": str(cache)}


def run_info(out: Path) -> dict:
    [path] = sorted(out.rglob("*.json"))
    return json.loads(path.read_text(encoding="utf-8"))["run"]


def metrics(out: Path) -> dict:
    [path] = sorted(out.rglob("*.json"))
    return json.loads(path.read_text(encoding="utf-8"))["metrics"]


def entry_files(cache: Path) -> list[Path]:
    return sorted((cache / "embeddings-v1").glob("*.safetensors"))


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """One run without the cache: the numbers every cached run must give, and proof that --no-cache writes nothing."""
    tmp = tmp_path_factory.mktemp("reference")
    done = clipbench(*SHAPES, "--no-cache", "--output", str(tmp / "out"), env=env_for(tmp / "cache"))
    assert done.returncode == 0, done.stderr
    return tmp


def test_no_cache_writes_nothing_and_records_that_the_cache_was_off(reference):
    assert not (reference / "cache").exists()
    run = run_info(reference / "out")
    assert run["image_embeddings_from_disk"] is None and run["text_embeddings_from_disk"] is None
    assert run["images_embedded"] == 400


def test_a_run_killed_mid_embedding_resumes_from_its_last_chunk(tmp_path, reference):
    cache, out = tmp_path / "cache", tmp_path / "out"
    killed = subprocess.Popen([sys.executable, "-c", BLOCKING, *SHAPES, "--output", str(out)], cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env={**os.environ, **env_for(cache)})
    try:
        said = killed.stdout.readline()
        assert said.strip() == f"blocked at {STOP_AT}", (said, killed.stderr.read() if killed.poll() is not None else "")
        chunks = sorted(p.name for p in cache.rglob("*.chunks/*.safetensors"))
        assert chunks == ["0000000000-0000000064.safetensors", "0000000064-0000000128.safetensors",
                          "0000000128-0000000192.safetensors"]
    finally:
        killed.send_signal(signal.SIGKILL)
        killed.communicate()
    assert killed.returncode == -signal.SIGKILL and not list(out.rglob("*.json"))

    done = clipbench(*SHAPES, "--output", str(out), env=env_for(cache))
    assert done.returncode == 0, done.stderr
    assert "warning" not in done.stderr
    run = run_info(out)
    assert run["images_embedded"] == 400 - STOP_AT  # the three finished chunks were read, not recomputed
    assert run["image_embeddings_from_disk"] is False  # only a whole entry counts as a hit
    assert metrics(out) == metrics(reference / "out")
    assert not list(cache.rglob("*.chunks"))  # the entry is whole: its chunks are gone


def test_two_runs_sharing_an_output_folder_and_a_cache_both_finish_with_whole_results(tmp_path, reference):
    cache, out = tmp_path / "cache", tmp_path / "out"
    runs = [subprocess.Popen([sys.executable, "-m", "benchmark.cli", *SHAPES, "--task", "shapes-captions",
                              "--output", str(out)], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, env={**os.environ, **env_for(cache)}) for _ in range(2)]
    outputs = [run.communicate(timeout=600) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], [err for _, err in outputs]
    assert all("warning" not in err and "Traceback" not in err for _, err in outputs), outputs
    files = sorted(out.rglob("*.json"))
    assert [p.name for p in files] == ["shapes-captions.en.json", "shapes.en.json"]
    for path in files:
        Result.from_disk(path)  # whole and valid
    assert json.loads((out / "tiny-shapes" / "shapes.en.json").read_text())["metrics"] == metrics(reference / "out")
    assert not list(out.rglob("*.tmp")) and not list(cache.rglob("*.tmp")) and not list(cache.rglob("*.chunks"))
    listed = clipbench("cache", "list", env=env_for(cache))
    assert listed.returncode == 0 and "unreadable" not in listed.stdout and "partial" not in listed.stdout


@pytest.fixture(scope="module")
def filled(tmp_path_factory):
    """A cache one run filled (tests that change it work on a copy)."""
    tmp = tmp_path_factory.mktemp("filled")
    done = clipbench(*SHAPES, "--output", str(tmp / "out"), env=env_for(tmp / "cache"))
    assert done.returncode == 0, done.stderr
    return tmp / "cache"


def test_a_warm_run_reads_everything_from_the_cache(tmp_path, filled, reference):
    done = clipbench(*SHAPES, "--output", str(tmp_path / "out"), env=env_for(filled))
    assert done.returncode == 0 and "warning" not in done.stderr, done.stderr
    run = run_info(tmp_path / "out")
    assert (run["image_embeddings_from_disk"], run["text_embeddings_from_disk"], run["images_embedded"]) == (True, True, 0)
    assert run["images_per_second"] is None
    assert metrics(tmp_path / "out") == metrics(reference / "out")


def test_a_corrupt_entry_is_one_warning_line_then_recomputed(tmp_path, filled, reference):
    cache = tmp_path / "cache"
    shutil.copytree(filled, cache)
    [images] = [p for p in entry_files(cache) if p.stat().st_size > 50_000]  # 400 x 64 floats; the classifier is 16 x 64
    data = bytearray(images.read_bytes())
    data[-7] ^= 0x10
    images.write_bytes(bytes(data))
    done = clipbench(*SHAPES, "--output", str(tmp_path / "second"), env=env_for(cache))
    assert done.returncode == 0, done.stderr
    warnings = [line for line in done.stderr.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 1 and str(images) in warnings[0] and "checksum" in warnings[0], done.stderr
    assert "Traceback" not in done.stderr
    run = run_info(tmp_path / "second")
    assert run["images_embedded"] == 400 and run["image_embeddings_from_disk"] is False
    assert run["text_embeddings_from_disk"] is True
    assert metrics(tmp_path / "second") == metrics(reference / "out")


def test_an_unwritable_cache_is_a_warning_and_the_run_goes_on(tmp_path, reference):
    (tmp_path / "file").write_text("in the way")
    done = clipbench(*SHAPES, "--output", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "file" / "cache"))
    assert done.returncode == 0, done.stderr
    warnings = [line for line in done.stderr.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 1 and "not writable" in warnings[0] and str(tmp_path / "file" / "cache") in warnings[0]
    assert run_info(tmp_path / "out")["image_embeddings_from_disk"] is None
    assert metrics(tmp_path / "out") == metrics(reference / "out")


def test_cache_list_and_clear(tmp_path, filled):
    cache = tmp_path / "cache"
    shutil.copytree(filled, cache)
    listed = clipbench("cache", "list", "--cache-dir", str(cache))
    assert listed.returncode == 0, listed.stderr
    entries = entry_files(cache)
    assert len(entries) == 2  # the images and the classifier
    for path in entries:
        assert path.stem[:16] in listed.stdout
    assert "| images " in listed.stdout and "| classifier " in listed.stdout and "400 x 64" in listed.stdout
    assert "KiB" in listed.stdout and "tiny-shapes" in listed.stdout and "2 entries" in listed.stdout
    verbose = clipbench("cache", "list", "--verbose", env=env_for(cache))
    assert '"batch_size": 16' in verbose.stdout and '"precision": "fp32"' in verbose.stdout

    old = time.time() - 10 * 86400
    os.utime(entries[0], (old, old))
    kept = clipbench("cache", "clear", "--older-than", "7d", env=env_for(cache))
    assert kept.returncode == 0 and "removed 1 entry" in kept.stdout, kept.stdout + kept.stderr
    assert entry_files(cache) == entries[1:]
    cleared = clipbench("cache", "clear", env=env_for(cache))
    assert cleared.returncode == 0 and "removed 1 entry" in cleared.stdout
    assert entry_files(cache) == []
    assert "is empty" in clipbench("cache", "list", env=env_for(cache)).stdout

    bad = clipbench("cache", "clear", "--older-than", "a week", env=env_for(cache))
    assert bad.returncode == 2 and bad.stderr.strip().count("\n") == 0 and "90s, 30m, 12h, 7d" in bad.stderr
    assert "Traceback" not in bad.stderr
    shutil.rmtree(cache)
    assert "is empty" in clipbench("cache", "list", env=env_for(cache)).stdout


def test_a_chunk_size_below_one_is_refused_before_the_model_loads(tmp_path):
    done = clipbench(*SHAPES, "--cache-chunk-size", "0", "--output", str(tmp_path / "out"), env=env_for(tmp_path / "cache"))
    assert_clean_failure(done, 2, "--cache-chunk-size must be at least 1", out=tmp_path)


def test_a_cache_write_that_fails_on_a_full_disk_is_a_warning_and_the_run_goes_on(tmp_path, reference):
    """A full disk, simulated with a file-size limit that a result file fits under and the image entry does not
    (safetensors reports that write failure as its own error type, not an OSError)."""
    import resource

    cache, out = tmp_path / "cache", tmp_path / "out"

    def small_files():
        resource.setrlimit(resource.RLIMIT_FSIZE, (48 * 1024, 48 * 1024))

    done = subprocess.run([sys.executable, "-m", "benchmark.cli", *SHAPES, "--output", str(out)], cwd=ROOT,
                          capture_output=True, text=True, env={**os.environ, **env_for(cache), "HF_HUB_OFFLINE": "1"},
                          preexec_fn=small_files, timeout=600)
    assert done.returncode == 0, done.stderr
    warnings = [line for line in done.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and str(cache) in warnings[0] and "File too large" in warnings[0], done.stderr
    assert "Traceback" not in done.stderr and "internal error" not in done.stderr
    assert metrics(out) == metrics(reference / "out")
    assert not list(cache.rglob("*.tmp"))
