"""`--task wds/<name>`: CLIP_benchmark's published webdatasets by their CLIP_benchmark names, fetched through
huggingface_hub and read where it caches them. The hub is never reached: each dataset is a stand-in written into
a hub cache exactly as huggingface_hub lays one out (datasets--clip-benchmark--wds_<name>/refs/main, blobs/<sha256>,
snapshots/<commit>/<file> symlinked to its blob), holding what CLIP_benchmark's repositories hold (test/nshards.txt,
test/0.tar ..., classnames.txt, zeroshot_classification_templates.txt and dataset_type.txt at the root), and
the real snapshot_download finds it offline."""

from __future__ import annotations

import ast
import io
import json
from pathlib import Path

import numpy as np
import pytest

from benchmark import listing, tasks, webdatasets
from benchmark.data import shapes
from benchmark.errors import ClipbenchError
from benchmark.result_names import result_name
from helpers import clipbench_here as clipbench, drawn_image, hub_dataset, read_results, write_wds



def classification_folder(root: Path, n: int = 40) -> Path:
    samples = shapes.classification_samples(n, seed=99)
    return write_wds(root, [{"image": image, "cls": label} for image, label in samples], shard_size=15,
                     classnames=shapes.class_names("en"), templates=["a photo of a {c}.", "a drawing of a {c}."])


def retrieval_folder(root: Path, dataset_type: str | None = "retrieval") -> Path:
    samples = shapes.caption_samples(12, seed=5)
    return write_wds(root, [{"image": image, "txt": captions["en"]} for image, captions in samples], shard_size=5,
                     dataset_type=dataset_type)


def multilabel_folder(root: Path) -> Path:
    """VOC 2007 multi-label as CLIP_benchmark exports it: `npy` indicator vectors, dataset_type.txt `multilabel`."""
    import webdataset

    (root / "test").mkdir(parents=True)
    with webdataset.ShardWriter(str(root / "test" / "%d.tar"), maxcount=4, verbose=0) as sink:
        for index in range(8):
            buffer = io.BytesIO()
            drawn_image(index).save(buffer, format="PNG")
            labels = np.zeros(4, dtype=np.int64)
            labels[[index % 4, (index + 1) % 4]] = 1
            sink.write({"__key__": "s%07d" % index, "png": buffer.getvalue(), "npy": labels})
    (root / "test" / "nshards.txt").write_text("2\n")
    (root / "classnames.txt").write_text("red\ngreen\nblue\ngrey\n")
    (root / "zeroshot_classification_templates.txt").write_text("a {c} picture.\n")
    (root / "dataset_type.txt").write_text("multilabel\n")
    return root


# ------------------------------------------------------------------------------------------ the names

def clip_benchmark_source(name: str) -> str:
    import clip_benchmark

    return (Path(clip_benchmark.__file__).parent / name).read_text(encoding="utf-8")


def upstream_default_task():
    """clip_benchmark 1.6.2's own get_dataset_default_task, taken from its builder.py (importing the module needs
    packages this environment lacks) and run as written."""
    tree = ast.parse(clip_benchmark_source("datasets/builder.py"))
    function = next(node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name == "get_dataset_default_task")
    scope: dict = {}
    exec(compile(ast.Module(body=[function], type_ignores=[]), "builder.py", "exec"), scope)
    return scope["get_dataset_default_task"]


def test_names_repositories_and_kinds_follow_clip_benchmark():
    assert len(webdatasets.NAMES) == len(set(webdatasets.NAMES)) == 41
    assert webdatasets.hub_repository("wds/vtab/cifar10") == "clip-benchmark/wds_vtab-cifar10"
    assert webdatasets.hub_repository("wds/mscoco_captions") == "clip-benchmark/wds_mscoco_captions"
    assert webdatasets.hub_repository("wds/imagenet-a") == "clip-benchmark/wds_imagenet-a"
    # CLIP_benchmark's cli.py: dataset_root.format(dataset_cleaned=dataset_name.replace("/", "-")), dataset_name without "wds/"
    assert "dataset_cleaned=dataset_name.replace(\"/\", \"-\")" in clip_benchmark_source("cli.py")
    default_task = upstream_default_task()
    for name in webdatasets.NAMES:
        kind = webdatasets.kind_of(name)[0]
        assert (kind == "retrieval") == (default_task(webdatasets.short_name(name)) == "zeroshot_retrieval"), name
    assert webdatasets.RETRIEVAL == {"wds/mscoco_captions", "wds/flickr8k", "wds/flickr30k"}
    # repositories and result file names: one per name, never a folder
    assert len({webdatasets.hub_repository(n) for n in webdatasets.NAMES}) == 41
    stems = {webdatasets.file_stem(n) for n in webdatasets.NAMES}
    assert len(stems) == 41 and not any("/" in s for s in stems)
    # every VTAB+ and retrieval dataset of clip_benchmark 1.6.2's collections has its webdataset here
    collections = next(node.value for node in ast.parse(clip_benchmark_source("datasets/builder.py")).body
                       if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "dataset_collection")
    collections = ast.literal_eval(collections)
    assert {f"wds/{n}" for n in collections["vtab+"] + collections["retrieval"]} <= set(webdatasets.NAMES)


def test_resolve_builds_the_task_and_refuses_unknown_names():
    [cifar] = tasks.resolve(["wds/vtab/cifar10"])
    assert (cifar.name, cifar.kind, cifar.languages, cifar.split, cifar.main_score) == (
        "wds/vtab/cifar10", "classification", ["en"], "test", "acc1")
    [source] = cifar.sources
    assert (cifar.dataset.format, source.kind, source.repository) == ("wds", "hub-webdataset", "clip-benchmark/wds_vtab-cifar10")
    assert source.files == ["test/*", "classnames.txt", "zeroshot_classification_templates.txt", "dataset_type.txt"]
    assert source.mapping is None  # the repository is the task: its own class names and templates
    [coco, voc] = tasks.resolve(["wds/mscoco_captions", "wds/voc2007_multilabel"])
    assert (coco.kind, coco.main_score) == ("retrieval", "mean_recall")
    assert (voc.kind, voc.metrics) == ("classification", ["map_11point"])
    with pytest.raises(ClipbenchError, match=r"Unknown webdataset 'wds/vtab/cifar1O'.*Did you mean: wds/vtab/cifar10") as caught:
        tasks.resolve(["wds/vtab/cifar1O"])
    assert caught.value.exit_code == 2


def test_list_tasks_shows_the_names_under_a_filter_only():
    listed = listing.list_tasks("wds/*")
    rows = [line for line in listed.splitlines()[2:]]
    assert len(rows) == 41 and all(row.startswith("| wds/") for row in rows)
    assert any("wds/vtab/cifar10 " in row and "clip-benchmark/wds_vtab-cifar10" in row for row in rows)
    assert "wds/" not in listing.list_tasks()  # the plain listing stays the task files'
    assert "wds/vtab/cifar100" in listing.list_tasks("*cifar*")


def test_result_names_never_make_folders_and_task_files_cannot_take_them(tmp_path):
    assert result_name("tiny", None, "wds/vtab/cifar10", None, None, "en", None, None) == Path("tiny/wds-vtab-cifar10.en.json")
    own = tmp_path / "wds-vtab-cifar10.toml"
    own.write_text((Path(tasks.task_registry().origin("shapes"))).read_text().replace('name = "shapes"', 'name = "wds-vtab-cifar10"'))
    with pytest.raises(ClipbenchError, match="reserved for the results of wds/vtab/cifar10"):
        tasks.load_task_file(own)


# ------------------------------------------------------------------------------------------ through the hub cache

def test_run_reads_the_hub_cache_and_equals_the_local_directory(tmp_path):
    """`--task wds/vtab/cifar10` fetches (here: finds offline) clip-benchmark/wds_vtab-cifar10 in the hub cache and
    reads it in place; the same files given as a local directory give the same images and the same numbers."""
    cache, root, out = tmp_path / "hub", tmp_path / "data", tmp_path / "out"
    local = classification_folder(tmp_path / "local")
    (local / "train").mkdir()  # the repositories also hold a train split, which is never read
    snapshot = hub_dataset(cache, "clip-benchmark/wds_vtab-cifar10", local)
    done = clipbench("run", "--model", "tiny-shapes", "--task", "wds/vtab/cifar10", "--task", str(local), "--num-workers", "0",
                     "--output", str(out), "--data-root", str(root), env={"HF_HUB_CACHE": str(cache)})
    assert done.returncode == 0, done.stderr
    assert f"reading clip-benchmark/wds_vtab-cifar10 from the Hugging Face cache: {snapshot}" in done.stderr
    assert not root.exists()  # nothing copied under the data root
    hub = json.loads((out / "tiny-shapes" / "wds-vtab-cifar10.en.json").read_text(encoding="utf-8"))
    [direct] = [r for r in read_results(out) if r["task"] == "local"]
    assert (hub["task"], hub["kind"], hub["main_score"]) == ("wds/vtab/cifar10", "classification", "acc1")
    assert hub["dataset"]["location"] == f"{snapshot}/test"  # the commit it read is in the record
    assert (hub["dataset"]["n_images"], hub["dataset"]["n_classes"]) == (40, 16)
    assert hub["dataset"]["fingerprint"] == direct["dataset"]["fingerprint"]
    assert hub["metrics"] == direct["metrics"] and hub["prompts"]["sha256"] == direct["prompts"]["sha256"]
    assert hub["metrics"]["acc1"] >= 0.85  # the bundled model knows these shapes
    assert "| wds/vtab/cifar10 " in done.stdout

    checked = clipbench("data", "check", "wds/vtab/cifar10", "--data-root", str(root), env={"HF_HUB_CACHE": str(cache)})
    assert checked.returncode == 0 and "| present " in checked.stdout and str(snapshot) in checked.stdout, checked.stdout


def test_retrieval_and_multilabel_names(tmp_path):
    cache, out = tmp_path / "hub", tmp_path / "out"
    hub_dataset(cache, "clip-benchmark/wds_mscoco_captions", retrieval_folder(tmp_path / "coco"))
    hub_dataset(cache, "clip-benchmark/wds_voc2007_multilabel", multilabel_folder(tmp_path / "voc"))
    done = clipbench("run", "--model", "tiny-shapes", "--task", "wds/mscoco_captions", "--task", "wds/voc2007_multilabel",
                     "--num-workers", "0", "--output", str(out), "--data-root", str(tmp_path / "data"),
                     env={"HF_HUB_CACHE": str(cache)})
    assert done.returncode == 0, done.stderr
    coco = json.loads((out / "tiny-shapes" / "wds-mscoco_captions.en.json").read_text(encoding="utf-8"))
    voc = json.loads((out / "tiny-shapes" / "wds-voc2007_multilabel.en.json").read_text(encoding="utf-8"))
    assert (coco["kind"], coco["dataset"]["n_images"], coco["dataset"]["n_texts"]) == ("retrieval", 12, 24)
    assert 0 <= coco["metrics"]["mean_recall"] <= 1
    assert (voc["kind"], list(voc["metrics"]), voc["dataset"]["n_classes"]) == ("classification", ["map_11point"], 4)


def test_a_repository_whose_type_disagrees_with_the_name_is_refused(tmp_path):
    """wds/flickr30k is retrieval (CLIP_benchmark decides from the name); a copy without dataset_type.txt is
    classification data, which CLIP_benchmark would read as (image, cls) pairs and fail on."""
    cache = tmp_path / "hub"
    hub_dataset(cache, "clip-benchmark/wds_flickr30k", retrieval_folder(tmp_path / "flickr", dataset_type=None))
    done = clipbench("run", "--model", "tiny-shapes", "--task", "wds/flickr30k", "--output", str(tmp_path / "out"),
                     "--data-root", str(tmp_path / "data"), env={"HF_HUB_CACHE": str(cache)})
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    [error] = [line for line in done.stderr.splitlines() if line.startswith("error:")]  # after the line saying where it reads
    assert "dataset_type.txt is absent (so: classification), but task 'wds/flickr30k' is retrieval" in error
    assert not (tmp_path / "out").exists()


def test_offline_with_nothing_cached_is_one_line(tmp_path):
    cache, root = tmp_path / "empty-cache", tmp_path / "data"
    done = clipbench("run", "--model", "tiny-shapes", "--task", "wds/vtab/cifar10", "--output", str(tmp_path / "out"),
                     "--data-root", str(root), env={"HF_HUB_CACHE": str(cache)})
    assert done.returncode == 1 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    line = done.stderr.strip()
    for needle in ("error: task 'wds/vtab/cifar10': dataset clip-benchmark/wds_vtab-cifar10 is not in the Hugging Face cache",
                   str(cache), "HF_HUB_OFFLINE is set", "clipbench data download wds/vtab/cifar10",
                   "test/*, classnames.txt, zeroshot_classification_templates.txt", str(root / "clip-benchmark" / "wds_vtab-cifar10")):
        assert needle in line, (needle, line)
    assert not (tmp_path / "out").exists()


def test_unknown_name_says_did_you_mean(tmp_path):
    done = clipbench("run", "--model", "tiny-shapes", "--task", "wds/nosuch", "--output", str(tmp_path))
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert done.stderr.startswith("error: Unknown webdataset 'wds/nosuch'") and "clipbench list tasks --filter" in done.stderr
    again = clipbench("run", "--model", "tiny-shapes", "--task", "wds/vtab/cifar", "--output", str(tmp_path))
    assert again.returncode == 2 and "Did you mean: wds/vtab/cifar10, wds/vtab/cifar100" in again.stderr, again.stderr
