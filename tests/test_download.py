"""`clipbench data download` through huggingface_hub (a dataset repository in a local hub cache, read
offline) and `clipbench data check`."""

import base64
import hashlib
import io
import json
import os
import sys
import zipfile

import pytest

from benchmark.data import shapes
from benchmark.errors import ClipbenchError
from benchmark.specs import DatasetSpec, Location, TaskSpec
from helpers import clipbench_here as clipbench

REPO = "OFA-Sys/chinese-clip-eval"


def flickr30k_cn_zip(n=6) -> bytes:
    """Chinese-CLIP's Flickr30k-CN.zip layout: Flickr30k-CN/test_imgs.tsv and test_texts.jsonl."""
    samples = shapes.caption_samples(n, seed=13)
    tsv, texts = [], []
    for index, (image, captions) in enumerate(samples):
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG")
        tsv.append(f"{1000 + index}\t{base64.urlsafe_b64encode(buffer.getvalue()).decode()}")
        for caption in captions["zh"]:
            texts.append(json.dumps({"text_id": len(texts), "text": caption, "image_ids": [1000 + index]}, ensure_ascii=False))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("Flickr30k-CN/test_imgs.tsv", "\n".join(tsv) + "\n")
        archive.writestr("Flickr30k-CN/test_texts.jsonl", "\n".join(texts) + "\n")
    return buffer.getvalue()


def fake_dataset_cache(cache, files: dict):
    commit = hashlib.sha1(REPO.encode()).hexdigest()
    repo = cache / ("datasets--" + REPO.replace("/", "--"))
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    for name, payload in files.items():
        (snapshot / name).write_bytes(payload)


def test_download_then_check_then_run(tmp_path):
    cache, root = tmp_path / "hub", tmp_path / "data"
    fake_dataset_cache(cache, {"Flickr30k-CN.zip": flickr30k_cn_zip(), "MUGE.zip": b"not wanted"})
    env = {"HF_HUB_CACHE": str(cache), "CLIPBENCH_DATA_ROOT": str(root)}

    before = clipbench("data", "check", "flickr30k-cn", env=env)
    assert before.returncode == 1 and "MISSING" in before.stdout and "test_imgs.tsv" in before.stdout

    done = clipbench("data", "download", "flickr30k-cn", env=env)
    assert done.returncode == 0, done.stderr
    assert (root / "Flickr30k-CN" / "test_imgs.tsv").is_file()
    assert not (root / "Flickr30k-CN" / "MUGE.zip").exists()  # hub_files limits what is fetched

    after = clipbench("data", "check", "flickr30k-cn", env=env)
    assert after.returncode == 0, after.stdout
    row = next(line for line in after.stdout.splitlines() if line.startswith("| flickr30k-cn"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[:5] == ["flickr30k-cn", "zh", "present, sizes differ", "6", "12"]
    assert "expected 1000 images / 5000 texts" in cells[-1]


def test_download_without_hub_source_names_where_to_get_it(tmp_path):
    done = clipbench("data", "download", "pracegover", env={"CLIPBENCH_DATA_ROOT": str(tmp_path)})
    assert done.returncode == 1 and "has no hub source" in done.stderr and "github.com/larocs/PraCegoVer" in done.stderr


def test_download_offline_without_cache_is_one_line(tmp_path):
    done = clipbench("data", "download", "flickr30k-cn", env={"HF_HUB_CACHE": str(tmp_path / "empty"),
                                                            "CLIPBENCH_DATA_ROOT": str(tmp_path / "data")})
    assert done.returncode == 1 and done.stderr.startswith("error: could not fetch dataset OFA-Sys/chinese-clip-eval")
    assert len(done.stderr.strip().splitlines()) == 1


def test_run_fetches_a_missing_dataset_from_the_hub(tmp_path):
    """No local copy, a hub source in the task file: `run` fetches it (here from the hub cache, offline) and scores it."""
    cache, root, out = tmp_path / "hub", tmp_path / "data", tmp_path / "out"
    fake_dataset_cache(cache, {"Flickr30k-CN.zip": flickr30k_cn_zip()})
    done = clipbench("run", "--model", "tiny-shapes", "--task", "flickr30k", "--language", "zh", "--num-workers", "0",
                     "--output", str(out), env={"HF_HUB_CACHE": str(cache), "CLIPBENCH_DATA_ROOT": str(root)})
    assert done.returncode == 0, done.stderr
    assert "fetched OFA-Sys/chinese-clip-eval" in done.stderr and (root / "Flickr30k-CN" / "test_texts.jsonl").is_file()
    result = json.loads((out / "tiny-shapes" / "flickr30k-cn.zh.json").read_text(encoding="utf-8"))
    assert (result["dataset"]["n_images"], result["dataset"]["n_texts"]) == (6, 12)


def test_run_without_local_copy_or_hub_is_one_line(tmp_path):
    done = clipbench("run", "--model", "tiny-shapes", "--task", "flickr30k-cn", "--output", str(tmp_path / "out"),
                     env={"HF_HUB_CACHE": str(tmp_path / "empty"), "CLIPBENCH_DATA_ROOT": str(tmp_path / "data")})
    assert done.returncode == 1 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    line = done.stderr.strip()
    for needle in ("task 'flickr30k-cn'", "test_imgs.tsv, test_texts.jsonl", "Flickr30k-CN.zip",
                   "the hub copy could not be fetched either"):
        assert needle in line, (needle, line)
    assert not (tmp_path / "out").exists()


def test_check_follows_a_language_kept_in_another_task(tmp_path):
    done = clipbench("data", "check", "flickr30k", env={"CLIPBENCH_DATA_ROOT": str(tmp_path)})
    rows = [[c.strip() for c in line.strip("|").split("|")][:3] for line in done.stdout.splitlines()[2:]]
    assert rows == [["flickr30k", "en", "MISSING"], ["flickr30k", "pt", "MISSING"], ["flickr30k-cn", "zh", "MISSING"]]
    assert done.returncode == 1


# one spec per on-disk format: the fields its options need beyond the shared source fields, and its task kind
FORMAT_TASKS = {"cnclip": ("retrieval", {}), "folder": ("classification", {}), "karpathy": ("retrieval", {"annotations": "a.json"}),
                "pairs": ("pair", {"annotations": "a.jsonl"}), "pracegover": ("retrieval", {}),
                "wds": ("classification", {}), "wds-json": ("retrieval", {})}


def format_task(fmt: str, **source) -> TaskSpec:
    kind, needed = FORMAT_TASKS[fmt]
    return TaskSpec(name="fixture", kind=kind, description="d", languages=["en"], split="test", metrics=["m"],
                    main_score="m", dataset=DatasetSpec(format=fmt, **needed, **source))


def test_every_on_disk_format_shares_the_hub_source_fields(tmp_path):
    """One typed record (Location) holds path and download for every format that reads files: each format parses
    them, refuses a misspelt key, and names `download` when the files are missing. The hub keys of task files written
    before typed sources (hub, revision, hub_files) still work: they become the task's hub source, which
    data.source() gives back in the same flat form. (`hub-webdataset` is the reader of a mirror, given to a task by
    download.located, never written in a task file.)"""
    from benchmark import data as datasets

    on_disk = sorted(name for name, fmt in datasets.formats().items() if issubclass(fmt.options, Location))
    assert on_disk == sorted([*FORMAT_TASKS, "hub-webdataset"])
    on_disk.remove("hub-webdataset")
    for fmt in on_disk:
        spec = format_task(fmt, path=str(tmp_path / "absent"), download="the publisher's site", hub="org/data",
                           revision="v1", hub_files=["test/*"])
        source = datasets.source(spec)
        assert (source.path, source.hub, source.revision, source.hub_files) == (str(tmp_path / "absent"), "org/data", "v1", ["test/*"])
        with pytest.raises(ClipbenchError, match="get (it|them) from the publisher's site"):
            datasets.load(spec, "en", tmp_path)
        with pytest.raises(ClipbenchError, match="field 'dataset.hub_file': unknown key"):
            datasets.validate_dataset(format_task(fmt, path="x", hub_file=["test/*"]))
    drawn = TaskSpec(name="s", kind="classification", description="d", languages=["en"], split="test", metrics=["m"],
                     main_score="m", dataset=DatasetSpec(format="shapes", size=4, seed=0))
    assert datasets.source(drawn) is None  # drawn at run time: nothing to fetch


def check_in_process(monkeypatch, capsys, *args) -> tuple[int, str]:
    from benchmark import cli

    monkeypatch.setattr(sys, "argv", ["clipbench", "data", "check", *args])
    with pytest.raises(SystemExit) as exit_:
        cli.main()
    return exit_.value.code, capsys.readouterr().out


def test_data_root_is_an_argument_not_an_environment_write(tmp_path, monkeypatch, capsys):
    """--data-root reaches the readers as an argument: a later command in the same process, without it, reads the
    default root again (the CLI used to write $CLIPBENCH_DATA_ROOT, which leaked into the next command)."""
    monkeypatch.delenv("CLIPBENCH_DATA_ROOT", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # the default root, ~/clipbench-data, is empty
    with zipfile.ZipFile(io.BytesIO(flickr30k_cn_zip())) as archive:
        archive.extractall(tmp_path / "data")

    code, out = check_in_process(monkeypatch, capsys, "flickr30k-cn", "--data-root", str(tmp_path / "data"))
    assert code == 0 and "present" in out, out
    assert "CLIPBENCH_DATA_ROOT" not in os.environ
    code, out = check_in_process(monkeypatch, capsys, "flickr30k-cn")
    assert code == 1 and "MISSING" in out and str(tmp_path / "home" / "clipbench-data" / "Flickr30k-CN") in out, out
