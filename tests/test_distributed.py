"""Data-parallel runs (torchrun, 2 CPU processes over gloo), job sharding (--shard I/N) and skip-existing
(--overwrite).

Three launches of two processes in all (each costs seconds of torch imports on a small machine): one torchrun run
of the bundled tiny task with the embedding cache on, compared with one process, then the same command again,
which reads every embedding from the cache; one run with a corrupt image that only rank 1 reads.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from benchmark import models
from benchmark.cli import run_app
from benchmark.data import shapes
from benchmark.distributed import share
from benchmark.jobs import parse_shard, shard
from benchmark.run import RunOptions, run
from benchmark.errors import ClipbenchError
from helpers import write_wds
from test_errors import _replace_member

ROOT = Path(__file__).resolve().parents[1]
TORCHRUN = Path(sys.executable).with_name("torchrun")
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
# 40 images in batches of 8: 5 batches, 3 on rank 0 and 2 on rank 1; 64 class prompts and 80 captions: 4 + 4, 5 + 5
TINY = ("--model", "tiny-shapes", "--task", "shapes", "--task", "shapes-captions", "--language", "en",
        "--limit", "40", "--batch-size", "8", "--num-workers", "0", "--save-predictions")


def options(out: Path, **changes) -> RunOptions:
    return RunOptions(**{"output": out, "batch_size": 64, "num_workers": 0, **changes})


def files(folder: Path) -> dict[str, Path]:
    return {p.relative_to(folder).as_posix(): p for p in sorted(folder.rglob("*")) if p.is_file()}


# ------------------------------------------------------------------------------------------ data-parallel

@pytest.mark.parametrize("n, world, unit", [(40, 2, 8), (41, 2, 8), (7, 3, 1), (3, 4, 1), (0, 2, 8), (100, 3, 7), (9, 2, 64)])
def test_shares_are_contiguous_whole_batches_that_cover_the_block_once(n, world, unit):
    block = range(5, 5 + n)
    parts = [share(block, rank, world, unit) for rank in range(world)]
    assert [i for part in parts for i in part] == list(block)  # in rank order, no row twice, none left out
    for part in parts:
        assert part.step == 1 and (not part or (part.start - block.start) % unit == 0)
    batches = [-(-len(part) // unit) for part in parts]
    assert max(batches) - min(batches) <= 1


def _torchrun(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(TORCHRUN), "--standalone", "--nproc-per-node", "2", "-m", "benchmark", "run", *args],
                          capture_output=True, text=True, env=ENV, cwd=ROOT, timeout=600)


def test_two_processes_give_the_metrics_and_predictions_of_one(tmp_path):
    """The cache is on (in chunks of 16 images: 3 per dataset); the same command run again reads every embedding
    from it (test_a_second_run_reads_every_embedding_from_rank_0s_disk_cache)."""
    single = tmp_path / "single"
    done = _torchrun(*TINY, "--cache-dir", str(tmp_path / "cache"), "--cache-chunk-size", "16", "--output", str(tmp_path / "dp"))
    assert done.returncode == 0, done.stderr
    one = run("tiny-shapes", ["shapes", "shapes-captions"], ["en"],
              options(single, limit=40, save_predictions=True, batch_size=8), echo=lambda line: None)
    ours, theirs = files(single), files(tmp_path / "dp")
    assert sorted(theirs) == sorted(ours) and len(ours) == 4  # one set: two results, their prediction lines
    for name, path in ours.items():
        if name.endswith(".predictions.jsonl"):
            mine = [json.loads(line) for line in path.read_text().splitlines()]
            split = [json.loads(line) for line in theirs[name].read_text().splitlines()]
            assert len(mine) == len(split)
            for a, b in zip(mine, split):
                assert {k: v for k, v in a.items() if k != "top5_scores"} == {k: v for k, v in b.items() if k != "top5_scores"}
                assert a.get("top5_scores", []) == pytest.approx(b.get("top5_scores", []), abs=1e-4)
            continue
        a, b = json.loads(path.read_text()), json.loads(theirs[name].read_text())
        assert a["metrics"].keys() == b["metrics"].keys()
        for metric, value in a["metrics"].items():
            assert abs(value - b["metrics"][metric]) <= 1e-6, (name, metric)
        assert a["dataset"] == b["dataset"] and a["prompts"] == b["prompts"]
        assert b["run"]["world_size"] == 2 and "world_size" not in a["run"]
    assert {r.task for r in one} == {"shapes", "shapes-captions"}
    # rank 0 alone prints: one table, one line per result
    assert done.stdout.count("| tiny-shapes | shapes ") == 1 and done.stdout.count("| tiny-shapes | shapes-captions ") == 1
    assert done.stderr.count("  -> ") == 2
    for path in files(tmp_path / "dp").values():
        if path.suffix == ".json":
            recorded = json.loads(path.read_text())["run"]
            assert recorded["image_embeddings_from_disk"] is False and recorded["text_embeddings_from_disk"] is False
            assert recorded["images_embedded"] == 40
    entries = sorted(p.name for p in (tmp_path / "cache" / "embeddings-v1").iterdir())
    # the images of both datasets, the classifier, the captions: whole entries, their chunks removed
    assert len(entries) == 4 and all(name.endswith(".safetensors") for name in entries), entries
    again = _torchrun(*TINY, "--cache-dir", str(tmp_path / "cache"), "--cache-chunk-size", "16", "--output", str(tmp_path / "dp2"))
    assert again.returncode == 0, again.stderr
    assert sorted(files(tmp_path / "dp2")) == sorted(theirs)
    for name, path in files(tmp_path / "dp2").items():
        if name.endswith(".predictions.jsonl"):
            assert path.read_text() == theirs[name].read_text()
            continue
        first, second = json.loads(theirs[name].read_text()), json.loads(path.read_text())
        assert second["metrics"] == first["metrics"], name
        assert second["run"]["image_embeddings_from_disk"] is True and second["run"]["text_embeddings_from_disk"] is True
        assert second["run"]["images_embedded"] == 0 and second["run"]["world_size"] == 2


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_a_rank_that_fails_stops_every_rank_with_its_message_and_no_result(tmp_path):
    """8 images in batches of 4: rank 1 embeds images 4 to 7, and image 6 is not an image. The two ranks are
    started as torchrun starts them (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT), so that each
    one's exit code and stderr can be read."""
    samples = [{"image": img, "cls": label} for img, label in shapes.classification_samples(8, seed=3)]
    root = write_wds(tmp_path / "wds", samples, classnames=shapes.class_names("en"), templates=["a {c}."])
    _replace_member(root / "test" / "0.tar", "s0000006.png", lambda data: b"not an image at all")
    out = tmp_path / "out"
    port = str(_free_port())
    ranks = [subprocess.Popen([sys.executable, "-m", "benchmark", "run", "--model", "tiny-shapes", "--task", str(root),
                               "--batch-size", "4", "--num-workers", "0", "--output", str(out)],
                              env={**ENV, "RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": "2",
                                   "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port, "CLIPBENCH_DIST_TIMEOUT": "120"},
                              cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for rank in (0, 1)]
    ended = [proc.communicate(timeout=300) for proc in ranks]
    for proc, (stdout, stderr) in zip(ranks, ended):
        lines = stderr.strip().splitlines()
        assert proc.returncode == 1, stderr
        assert len(lines) == 1 and "Traceback" not in stderr, stderr
        assert lines[0].startswith("error: rank 1 of 2: ") and "sample 's0000006' could not be read" in lines[0], lines[0]
        assert "re-download or remove the corrupt image" in lines[0]
        assert stdout == ""
    assert not out.exists() or not list(out.rglob("*"))


# ------------------------------------------------------------------------------------------------ --shard

@pytest.mark.parametrize("value", ["3/2", "x", "0/2", "1/0", "2", "-1/2", "1/2/3", "a/b", ""])
def test_a_bad_shard_is_one_line_and_exit_2(value, capsys, tmp_path):
    code = run_app(["run", "--model", "tiny-shapes", "--task", "shapes", "--shard", value, "--output", str(tmp_path)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("error: --shard"), err
    assert "1-based" in err[0] and not list(tmp_path.iterdir())


def test_shard_parts_partition_the_jobs():
    jobs = list(range(11))
    for parts in (1, 2, 3, 4, 11, 12):
        chosen = [shard(jobs, (part, parts)) for part in range(1, parts + 1)]
        assert sorted(j for c in chosen for j in c) == jobs
        assert chosen[0] == jobs[::parts]
    assert parse_shard("2/3") == (2, 3) and parse_shard(None) is None
    with pytest.raises(ClipbenchError):
        parse_shard("4/3")


def test_shards_of_a_run_write_the_files_of_the_whole_run(tmp_path):
    """Four jobs (two tasks, two languages) in three parts into one folder: the files and numbers of one run."""
    tasks, languages = ["shapes", "shapes-captions"], ["en", "pt"]
    whole = run("tiny-shapes", tasks, languages, options(tmp_path / "whole", limit=16), echo=lambda line: None)
    parts = []
    for part in (1, 2, 3):
        said: list[str] = []
        parts.append(run("tiny-shapes", tasks, languages, options(tmp_path / "parts", limit=16, shard=f"{part}/3"),
                         echo=said.append))
        assert not any(line.startswith("skip:") for line in said)
    # the plan is tasks in order, each in its languages; part I has its I-th, (I+3)-th, ... job
    assert [[(r.task, r.language) for r in p] for p in parts] == [
        [("shapes", "en"), ("shapes-captions", "pt")], [("shapes", "pt")], [("shapes-captions", "en")]]
    assert sorted(files(tmp_path / "parts")) == sorted(files(tmp_path / "whole"))
    assert {(r.task, r.language): r.metrics for p in parts for r in p} == {(r.task, r.language): r.metrics for r in whole}
    said = []
    assert run("tiny-shapes", tasks, languages, options(tmp_path / "none", shard="5/5"), echo=said.append) == []
    assert said == ["--shard 5/5: no job in this part (the run has 4); nothing to do"]
    assert not (tmp_path / "none").exists()
    table = run_app(["table", str(tmp_path / "parts"), "--output", str(tmp_path / "table.md")])
    assert table == 0 and (tmp_path / "table.md").read_text().count("tiny-shapes") == 1


# ----------------------------------------------------------------------------------- skip and --overwrite

def _edit(path: Path, change) -> None:
    payload = json.loads(path.read_text())
    change(payload)
    path.write_text(json.dumps(payload))


def test_a_rerun_skips_finished_jobs_without_loading_the_model(tmp_path, monkeypatch):
    out = tmp_path / "out"
    first = run("tiny-shapes", ["shapes", "shapes-captions"], ["en"], options(out, limit=16), echo=lambda line: None)
    before = {name: path.read_bytes() for name, path in files(out).items()}
    loads = []
    real = models.load
    monkeypatch.setattr(models, "load", lambda *a, **k: loads.append(1) or real(*a, **k))

    said: list[str] = []
    again = run("tiny-shapes", ["shapes", "shapes-captions"], ["en"], options(out, limit=16), echo=said.append)
    paths = sorted(files(out).values())
    assert said == [f"skip: {path} exists (same provenance); --overwrite to recompute"
                    for path in sorted(paths, key=lambda p: "captions" in p.name)]
    assert not loads and [r.payload() for r in again] == [r.payload() for r in first]
    assert {name: path.read_bytes() for name, path in files(out).items()} == before

    # --overwrite recomputes both; the model is loaded once
    said = []
    run("tiny-shapes", ["shapes", "shapes-captions"], ["en"], options(out, limit=16, overwrite=True), echo=said.append)
    assert len(loads) == 1 and sum("  -> " in line for line in said) == 2 and not any(s.startswith("skip:") for s in said)

    # one result whose inputs differ (its recorded dataset fingerprint) is recomputed and replaced; the other skipped
    shapes_file = next(p for p in paths if "captions" not in p.name)
    _edit(shapes_file, lambda r: r["dataset"].update(fingerprint="0" * 64))
    said = []
    run("tiny-shapes", ["shapes", "shapes-captions"], ["en"], options(out, limit=16), echo=said.append)
    assert [line.split(":")[0] for line in said] == ["skip", "tiny-shapes"] and "captions" in said[0]
    assert json.loads(shapes_file.read_text())["dataset"]["fingerprint"] != "0" * 64
    assert len(loads) == 2


@pytest.mark.parametrize("change", [
    lambda r: r["prompts"].update(sha256="0" * 64),  # the prompt list changed
    lambda r: r["model"].update(checkpoint_sha256="0" * 64),  # the weights were retrained in place
    lambda r: r["run"].update(clipbench_version="0.0.1"),
    lambda r: r["protocol"]["settings"].update(template_averaging="mean-then-normalise"),
    lambda r: r["metrics"].pop("acc5"),  # the task's metric list changed
    lambda r: r["dataset"].update(n_images=17),
])
def test_a_result_of_other_inputs_is_recomputed(tmp_path, change, shapes_result):
    out = tmp_path / "out"
    shutil.copytree(shapes_result, out)
    [path] = files(out).values()
    _edit(path, change)
    said: list[str] = []
    run("tiny-shapes", ["shapes"], ["en"], options(out, limit=16), echo=said.append)
    assert len(said) == 1 and "  -> " in said[0], said
    assert json.loads(path.read_text()) == json.loads(next(iter(files(shapes_result).values())).read_text()) | {
        "run": json.loads(path.read_text())["run"]}  # replaced by the same measurement, but for timings


@pytest.fixture(scope="module")
def shapes_result(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("shapes")
    run("tiny-shapes", ["shapes"], ["en"], options(out, limit=16), echo=lambda line: None)
    return out


def test_options_that_change_the_numbers_recompute(tmp_path, monkeypatch, shapes_result):
    """--bootstrap and --save-predictions are not in the file name but are in the result: a rerun that asks for
    them is not skipped (here the model then refuses to load, so it shows)."""
    out = tmp_path / "out"
    shutil.copytree(shapes_result, out)
    monkeypatch.setattr(models, "load", _refuse)
    for extra in ({"bootstrap": 10}, {"save_predictions": True}, {"precision": "bf16"}):
        with pytest.raises(AssertionError, match="the model was loaded"):
            run("tiny-shapes", ["shapes"], ["en"], options(out, limit=16, **extra), echo=lambda line: None)
    said: list[str] = []
    run("tiny-shapes", ["shapes"], ["en"], options(out, limit=16), echo=said.append)
    assert len(said) == 1 and said[0].startswith("skip: ")


def _refuse(*args, **kwargs):
    raise AssertionError("the model was loaded")
