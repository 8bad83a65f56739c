"""Typed data sources (benchmark.sources): each registered hub mirror read from a stand-in in the exact hub-cache
layout, its declared class names and split size checked, its labels mapped to the task's order; every registered
mapping proven a bijection of same-named classes; load-time errors for malformed sources. Offline throughout."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from benchmark import data as datasets
from benchmark import download, prompts
from benchmark.data import shapes
from benchmark.errors import ClipbenchError
from benchmark.sources import HubWebdataset, normalise, read_mapping
from benchmark.tasks import load_task_file, task_registry
from helpers import clipbench_here as clipbench, hub_dataset, read_results, write_wds

COMMIT = "feedfacefeedfacefeedfacefeedfacefeedface"


def mirrored_tasks():
    """(task, its hub-webdataset source) for every registered task that names one."""
    return [(spec, source) for _, spec in task_registry().items() for source in spec.sources
            if source.kind == "hub-webdataset"]


def mirror_names():
    return [f"{spec.name}:{source.repository}" for spec, source in mirrored_tasks()]


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    from huggingface_hub import constants

    cache = tmp_path / "hub"
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    return cache


def tiny_png(seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8))


def write_standin(folder: Path, spec, source: HubWebdataset, classnames: list[str] | None = None) -> int:
    """A stand-in of `source` built from what the task file declares: one sample per mirror class (label = the
    class's mirror index; multi-label: that class alone), or for retrieval a few captioned images, with
    classnames.txt as declared (or `classnames`), templates and dataset_type.txt. Returns its sample count."""
    import webdataset

    (folder / "test").mkdir(parents=True)
    multilabel = spec.metrics == ["map_11point"]
    names = read_mapping(spec.source_file, source, spec.num_classes).classnames if source.mapping else None
    count = len(names) if names else 4
    with webdataset.ShardWriter(str(folder / "test" / "%d.tar"), maxcount=max(1, count // 2 + 1), verbose=0) as sink:
        for index in range(count):
            buffer = io.BytesIO()
            tiny_png(index).save(buffer, format="PNG")
            sample = {"__key__": "s%07d" % index, "png": buffer.getvalue()}
            if spec.kind == "retrieval":
                sample["txt"] = f"caption one of image {index}\ncaption two of image {index}"
            elif multilabel:
                row = np.zeros(count, dtype=np.int64)
                row[index] = 1
                sample["npy"] = row
            else:
                sample["cls"] = index
            sink.write(sample)
        shards = sink.shard
    (folder / "test" / "nshards.txt").write_text(f"{shards}\n")
    if names is not None:
        (folder / "classnames.txt").write_text("\n".join(classnames or names) + "\n", encoding="utf-8")
        (folder / "zeroshot_classification_templates.txt").write_text("a photo of a {c}.\n")
    if spec.kind == "retrieval" or multilabel:
        (folder / "dataset_type.txt").write_text(("retrieval" if spec.kind == "retrieval" else "multilabel") + "\n")
    return count


def with_size(spec, source: HubWebdataset, images: int, texts: int | None = None):
    """`spec` with only `source`, declaring the stand-in's size (the reader's size check is the real one)."""
    changed = source.model_copy(update={"images": images, **({"texts": texts} if source.texts else {})})
    return spec.model_copy(update={"sources": [changed]})


def same_class(mirror: str, task: str, aliases: list[dict]) -> bool:
    return normalise(mirror) == normalise(task) or any(
        a["mirror"] == mirror and a["task"] == task and a["reason"].strip() for a in aliases)


# ------------------------------------------------------------------------------------------ the registered mappings

@pytest.mark.parametrize("spec,source", mirrored_tasks(), ids=mirror_names())
def test_every_registered_mapping_is_a_bijection_of_same_named_classes(spec, source):
    if source.mapping is None:
        assert spec.kind == "retrieval" and source.images and source.texts and source.languages == ["en"]
        return
    mapping = read_mapping(spec.source_file, source, spec.num_classes)
    task_names = prompts.load(spec.prompts, "en", spec.num_classes).classnames
    assert sorted(mapping.labels) == list(range(spec.num_classes)) == list(range(len(mapping.classnames)))
    for i, label in enumerate(mapping.labels):
        assert same_class(mapping.classnames[i], task_names[label], mapping.aliases), (i, mapping.classnames[i], task_names[label])
    assert source.images == spec.expected_images  # the declared split is the task's
    assert mapping.repository == source.repository and mapping.mirror_classnames and mapping.task_classnames


def test_mapping_files_are_what_the_dev_script_derives():
    from benchmark.dev import mirror_mappings

    assert mirror_mappings.main(["--check"]) == 0


def test_readme_datasets_table_is_made_from_the_task_files(capsys):
    """The README's table of every task's split, hub copies and manual routes is the dev script's output."""
    from benchmark.dev import datasets_table

    assert datasets_table.main(["--check"]) == 0, capsys.readouterr().err
    made = datasets_table.table()
    for name, task in task_registry().items():
        assert f"| `{name}` |" in made
    assert "| `food-101` | classification | en, pt | 25,250 images, 101 classes | - | CLIP_benchmark publishes no" in made
    assert "`clip-benchmark/wds_mscoco_captions` (en) | pt: the folder only" in made


def test_at_least_one_registered_mirror_is_permuted():
    """The mapping is not the identity everywhere: caltech-101 and cifar-100 order their classes otherwise."""
    moved = {spec.name for spec, source in mirrored_tasks() if source.mapping and
             read_mapping(spec.source_file, source, spec.num_classes).labels != list(range(spec.num_classes))}
    assert {"caltech-101", "cifar-100"} <= moved


# ------------------------------------------------------------------------------------------ read through the hub cache

@pytest.mark.parametrize("spec,source", mirrored_tasks(), ids=mirror_names())
def test_each_registered_mirror_reads_from_the_hub_cache_in_task_order(spec, source, hub_cache, tmp_path):
    count = write_standin(tmp_path / "standin", spec, source)
    snapshot = hub_dataset(hub_cache, source.repository, tmp_path / "standin", COMMIT)
    texts = 2 * count if spec.kind == "retrieval" else None
    task = with_size(spec, source, count, texts)
    said = []
    data = download.load_or_fetch(task, "en", tmp_path / "data", echo=said.append)
    assert said == [f"{spec.name}: reading {source.repository} from the Hugging Face cache: {snapshot}"]
    assert data.origin["repository"] == source.repository and data.origin["revision"] == COMMIT
    assert data.images.location == f"{snapshot}/test" and len(data.images) == count
    if spec.kind == "retrieval":
        assert len(data.texts) == texts
        return
    mapping = read_mapping(spec.source_file, source, spec.num_classes)
    task_names = prompts.load(spec.prompts, "en", spec.num_classes).classnames
    assert data.prompts is None and data.num_classes == spec.num_classes  # the task's own prompts are used
    got = data.labels.argmax(1) if data.labels.ndim == 2 else data.labels
    for mirror_index, label in enumerate(got):  # sample i is the mirror's class i: it comes out as the same class
        assert same_class(mapping.classnames[mirror_index], task_names[label], mapping.aliases)
    assert list(got) == mapping.labels


def test_the_declared_split_size_is_checked(hub_cache, tmp_path):
    spec = task_registry().get("caltech-101")
    [source] = spec.hub_sources()
    count = write_standin(tmp_path / "standin", spec, source)
    hub_dataset(hub_cache, source.repository, tmp_path / "standin", COMMIT)
    with pytest.raises(ClipbenchError) as caught:
        download.load_or_fetch(spec, "en", tmp_path / "data", echo=lambda _: None)
    line = str(caught.value)
    assert "\n" not in line
    for needle in ("clip-benchmark/wds_vtab-caltech101", f"revision {COMMIT}", f"holds {count} samples",
                   "declares 6084", "nothing was evaluated"):
        assert needle in line, (needle, line)


def test_data_download_reads_a_fetched_mirror_as_the_task(hub_cache, tmp_path):
    """`data download` checks a mirror as soon as it is fetched: as declared, it says so; otherwise the mirror's
    one line (the repository, the revision, what differs), and the command fails."""
    from benchmark import fetching

    spec = task_registry().get("caltech-101")
    [source] = spec.hub_sources()
    count = write_standin(tmp_path / "standin", spec, source)
    hub_dataset(hub_cache, source.repository, tmp_path / "standin", COMMIT)
    said = []
    fetching.download_all([with_size(spec, source, count)], tmp_path / "data", said.append)
    assert len(said) == 1 and said[0].endswith(f"; read as the task: {count:,} images, as its task file declares)"), said
    with pytest.raises(ClipbenchError) as caught:
        fetching.download_all([spec], tmp_path / "data", said.append)
    for needle in ("clip-benchmark/wds_vtab-caltech101", f"revision {COMMIT}", f"holds {count} samples", "declares 6084"):
        assert needle in str(caught.value), (needle, str(caught.value))


def test_retrieval_caption_count_is_checked(hub_cache, tmp_path):
    spec = task_registry().get("flickr30k")
    [source] = spec.hub_sources()
    count = write_standin(tmp_path / "standin", spec, source)
    hub_dataset(hub_cache, source.repository, tmp_path / "standin", COMMIT)
    with pytest.raises(ClipbenchError, match=rf"holds {2 * count} captions, the task file declares {2 * count + 1}"):
        download.load_or_fetch(with_size(spec, source, count, 2 * count + 1), "en", tmp_path / "data", echo=lambda _: None)


def test_other_class_names_stop_the_run(hub_cache, tmp_path):
    """A mirror whose classnames.txt differs from the declared list (another dataset, or a re-upload that reordered
    its classes) is refused before anything is evaluated: one line naming repository, revision and the difference."""
    spec = task_registry().get("cifar-100")
    [source] = spec.hub_sources()
    declared = read_mapping(spec.source_file, source, spec.num_classes).classnames
    swapped = [declared[1], declared[0], *declared[2:]]
    count = write_standin(tmp_path / "standin", spec, source, classnames=swapped)
    hub_dataset(hub_cache, source.repository, tmp_path / "standin", COMMIT)
    with pytest.raises(ClipbenchError) as caught:
        download.load_or_fetch(with_size(spec, source, count), "en", tmp_path / "data", echo=lambda _: None)
    line = str(caught.value)
    for needle in ("clip-benchmark/wds_vtab-cifar100", f"revision {COMMIT}", "classnames.txt differs",
                   "line 1 is 'aquarium_fish', the task file declares 'apple'", "nothing was evaluated"):
        assert needle in line, (needle, line)


def test_a_mirror_serves_only_its_languages_and_the_folder_comes_first(hub_cache, tmp_path):
    """flickr30k's mirror has English captions only: Portuguese still needs the folder (and says so); a folder that
    is there is read, not the mirror."""
    spec = task_registry().get("flickr30k")
    [source] = spec.hub_sources()
    count = write_standin(tmp_path / "standin", spec, source)
    hub_dataset(hub_cache, source.repository, tmp_path / "standin", COMMIT)
    task = with_size(spec, source, count, 2 * count)
    with pytest.raises(ClipbenchError, match="dataset_flickr30k.json"):
        download.load_or_fetch(task, "pt", tmp_path / "data", echo=lambda _: None)
    (tmp_path / "data" / "flickr30k").mkdir(parents=True)
    with pytest.raises(ClipbenchError, match="dataset_flickr30k.json"):  # the folder, present but empty, is what is read
        download.load_or_fetch(task, "en", tmp_path / "data", echo=lambda _: None)


def test_a_missing_mirror_falls_back_to_the_folders_message(hub_cache, tmp_path):
    spec = task_registry().get("cifar-10")
    with pytest.raises(ClipbenchError) as caught:
        download.load_or_fetch(spec, "en", tmp_path / "data", echo=lambda _: None)
    line = str(caught.value)
    assert "elevater/cifar-10" in line and "dataset clip-benchmark/wds_vtab-cifar10 is not in the Hugging Face cache" in line
    assert "HF_HUB_OFFLINE is set" in line and "\n" not in line


# ------------------------------------------------------------------------------------------ a permuted mirror, end to end

def permuted_task(folder: Path, repository: str, order: list[int]) -> Path:
    """A task of the bundled shapes classes (prompts/<lang>/shapes.json) whose mirror lists them in `order`."""
    names = shapes.class_names("en")
    (folder / "mappings").mkdir(parents=True)
    (folder / "mappings" / "shapes-mirror.json").write_text(json.dumps({
        "repository": repository, "classnames": [names[j] for j in order], "labels": order,
        "task_classnames": "prompts/en/shapes.json", "mirror_classnames": "this test"}))
    path = folder / "shapes-mirror.toml"
    path.write_text(f'''name = "shapes-mirror"
kind = "classification"
description = "the shapes classes, read from a hub mirror that orders them otherwise"
languages = ["en", "pt"]
split = "test"
metrics = ["acc1", "acc5", "mean_per_class_recall"]
main_score = "acc1"
prompts = "shapes"
num_classes = 16

[dataset]
format = "folder"
path = "shapes-mirror"

[[sources]]
kind = "hub-webdataset"
repository = "{repository}"
images = 48
mapping = "mappings/shapes-mirror.json"
''')
    return path


def test_a_permuted_mirror_scores_as_its_task(tmp_path):
    """Drawn shapes stored in a mirror whose class order is reversed (its `cls` are mirror indices) score exactly as
    the same images stored in the task's own order (a local CLIP_benchmark-layout copy with the task's prompts): the
    run maps the mirror's labels to the task's. The result records the mirror, the commit read and the mapping.
    Read unmapped, every label would name another class."""
    repository = "someone/wds_shapes-reversed"
    order = list(reversed(range(16)))
    task_file = permuted_task(tmp_path / "tasks", repository, order)
    samples = shapes.classification_samples(48, seed=21)
    position = {label: i for i, label in enumerate(order)}  # task label -> mirror index
    names = shapes.class_names("en")
    templates = prompts.load("shapes", "en").templates
    write_wds(tmp_path / "standin", [{"image": image, "cls": position[label]} for image, label in samples], shard_size=20,
              classnames=[names[j] for j in order], templates=["a photo of a {c}."])
    write_wds(tmp_path / "task-order", [{"image": image, "cls": label} for image, label in samples], shard_size=20,
              classnames=names, templates=templates)
    cache, out = tmp_path / "hub", tmp_path / "out"
    hub_dataset(cache, repository, tmp_path / "standin", COMMIT)
    done = clipbench("run", "--model", "tiny-shapes", "--task", str(task_file), "--task", str(tmp_path / "task-order"),
                     "--language", "en", "--num-workers", "0", "--output", str(out), "--data-root", str(tmp_path / "data"),
                     env={"HF_HUB_CACHE": str(cache)})
    assert done.returncode == 0, done.stderr
    mirrored, direct = (next(r for r in read_results(out) if r["task"] == name) for name in ("shapes-mirror", "task-order"))
    assert mirrored["metrics"] == direct["metrics"] and mirrored["metrics"]["acc1"] > 0.5, (mirrored["metrics"], direct["metrics"])
    assert mirrored["prompts"]["sha256"] == direct["prompts"]["sha256"]
    assert mirrored["dataset"]["source"] == {"kind": "hub-webdataset", "repository": repository, "revision": COMMIT,
                                             "mapping": "mappings/shapes-mirror.json"}
    assert "source" not in direct["dataset"]  # read from its own folder


# ------------------------------------------------------------------------------------------ load-time errors

def task_text(sources: str, dataset: str = 'format = "folder"\npath = "x"') -> str:
    return f'''name = "bad"
kind = "classification"
description = "d"
languages = ["en"]
split = "test"
metrics = ["acc1"]
main_score = "acc1"
prompts = "shapes"
num_classes = 16

[dataset]
{dataset}
{sources}'''


def load_text(tmp_path: Path, text: str, mapping: dict | None = None):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    if mapping is not None:
        (tmp_path / "map.json").write_text(json.dumps(mapping))
    return load_task_file(path)


def shapes_mapping(labels: list[int]) -> dict:
    return {"repository": "org/mirror", "classnames": shapes.class_names("en"), "labels": labels,
            "task_classnames": "t", "mirror_classnames": "m"}


@pytest.mark.parametrize("sources,needle", [
    ('[[sources]]\nkind = "torrent"\nrepository = "org/x"\n', "field 'sources.0': Input tag 'torrent' found using 'kind' does not match"),
    ('[[sources]]\nkind = "hub-webdataset"\nrepository = "org/x"\nmaping = "m.json"\n', "field 'sources.0.hub-webdataset.maping': unknown key"),
    ('[[sources]]\nkind = "hub-webdataset"\nrepository = "not a repo"\nmapping = "map.json"\n', "field 'sources.0.hub-webdataset.repository'"),
    ('[[sources]]\nkind = "manual"\nhow = "ask"\n', "field 'sources.0.manual.why': required field is missing"),
    ('[[sources]]\nkind = "hub-webdataset"\nrepository = "org/x"\n', "field 'sources.0': a webdataset mirror of a task with its own class names needs 'mapping'"),
])
def test_malformed_sources_are_one_line_at_load_time(tmp_path, sources, needle):
    with pytest.raises(ClipbenchError) as caught:
        load_text(tmp_path, task_text(sources))
    line = str(caught.value)
    assert "\n" not in line and line.startswith(str(tmp_path / "bad.toml")) and needle in line, line


@pytest.mark.parametrize("labels,needle", [
    ([0] * 16, "not one-to-one: task label(s) [0] given twice"),
    (list(range(15)) + [16], "label(s) [16] out of range"),
    (list(range(15)), "15 labels for 16 class names"),
])
def test_a_mapping_that_is_not_a_bijection_is_refused_at_load_time(tmp_path, labels, needle):
    text = task_text('[[sources]]\nkind = "hub-webdataset"\nrepository = "org/mirror"\nmapping = "map.json"\n')
    with pytest.raises(ClipbenchError) as caught:
        load_text(tmp_path, text, shapes_mapping(labels))
    assert needle in str(caught.value) and str(tmp_path / "bad.toml") in str(caught.value)
    load_text(tmp_path, text, shapes_mapping(list(reversed(range(16)))))  # a permutation is fine


def test_list_tasks_fails_on_a_bad_source(tmp_path, monkeypatch):
    from benchmark import listing

    (tmp_path / "bad.toml").write_text(task_text('[[sources]]\nkind = "torrent"\n'))
    monkeypatch.setenv("CLIPBENCH_TASKS", str(tmp_path / "bad.toml"))
    with pytest.raises(ClipbenchError) as caught:  # what `clipbench list tasks` calls
        listing.list_tasks()
    assert str(caught.value).startswith(f"{tmp_path / 'bad.toml'}: field 'sources.0'") and "'torrent'" in str(caught.value)


def test_old_hub_keys_become_a_source(tmp_path):
    archive = load_text(tmp_path, task_text("", 'format = "folder"\npath = "x"\nhub = "org/data"\nhub_files = ["a.zip"]'))
    assert [(s.kind, s.repository, s.files) for s in archive.sources] == [("hub-archive", "org/data", ["a.zip"])]
    assert datasets.source(archive).hub == "org/data" and not datasets.source(archive).hub_cache
    with pytest.raises(ClipbenchError, match="move it to \\[\\[sources\\]\\]"):
        load_text(tmp_path, task_text('[[sources]]\nkind = "manual"\nhow = "a"\nwhy = "b"\n',
                                      'format = "folder"\npath = "x"\nhub = "org/data"'))


def test_manual_sources_are_what_download_names(tmp_path):
    with pytest.raises(ClipbenchError) as caught:  # what `clipbench data download coco-cn` calls
        download.download(task_registry().get("coco-cn"), tmp_path)
    assert "has no hub source to download" in str(caught.value)
    assert "apply for COCO-CN" in str(caught.value) and "by application" in str(caught.value)


def test_data_check_rows_name_the_source(hub_cache, tmp_path):
    """`data check` reads a cached mirror as `run` does and says which source each row read, or, when missing,
    every source the task knows for that language (its folder first)."""
    spec = task_registry().get("cifar-10")
    [source] = spec.hub_sources()
    count = write_standin(tmp_path / "standin", spec, source)
    rows = download.check([with_size(spec, source, count), task_registry().get("coco-cn")], tmp_path / "data")
    assert [(r["task"], r["lang"], r["status"], r["source"]) for r in rows] == [
        ("cifar-10", "en", "MISSING", "folder; hub-webdataset clip-benchmark/wds_vtab-cifar10"),
        ("cifar-10", "pt", "MISSING", "folder; hub-webdataset clip-benchmark/wds_vtab-cifar10"),
        ("coco-cn", "zh", "MISSING", "folder; manual")]
    hub_dataset(hub_cache, source.repository, tmp_path / "standin", COMMIT)
    rows = download.check([with_size(spec, source, count)], tmp_path / "data")
    assert [(r["status"], r["images"], r["classes"], r["source"]) for r in rows] == [
        ("present, sizes differ", count, 10, f"hub-webdataset clip-benchmark/wds_vtab-cifar10@{COMMIT}")] * 2


def test_list_tasks_shows_each_tasks_other_sources():
    from benchmark import listing

    rows = {line.split("|")[1].strip(): line.split("|")[-2].strip() for line in listing.list_tasks().splitlines()[2:]}
    assert rows["cifar-100"] == "clip-benchmark/wds_vtab-cifar100" and rows["coco-cn"] == "manual"
    assert rows["flickr30k-cn"] == "OFA-Sys/chinese-clip-eval" and rows["shapes"] == "-"


def test_a_mirror_fetches_the_files_of_its_split():
    assert HubWebdataset(kind="hub-webdataset", repository="org/x").files[0] == "test/*"
    assert HubWebdataset(kind="hub-webdataset", repository="org/x", split="val").files == [
        "val/*", "classnames.txt", "zeroshot_classification_templates.txt", "dataset_type.txt"]
