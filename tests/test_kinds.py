"""Task kinds: every metric of every kind gets a value and a bootstrap interval from its record, a new record
is all a new metric needs, the records are the one list of metric names task files are checked against, and
each kind's pre-model checks fail cleanly."""

import dataclasses
import functools
import subprocess
import sys

import numpy as np
import pytest
import torch

from benchmark import kinds, metrics, models
from benchmark.data import ClassificationData, InMemoryImages, RetrievalData, shapes
from benchmark.data import PairData
from benchmark.embed import ImageEmbeddingCache
from benchmark.errors import ClipbenchError
from benchmark.kinds import KINDS, Metric, bootstrap, classification, evaluate
from benchmark.prompts import Prompts
from benchmark.specs import DatasetSpec, TaskSpec
from benchmark.tasks import load_task_file

CLASSES = (0, 5)  # two of the 16 shape classes: roc_auc needs exactly two
CACHE = ImageEmbeddingCache()  # the stand-in datasets are embedded once for the whole file


@pytest.fixture(scope="module")
def encoder():
    """The bundled tiny-shapes model: real weights, embeds these few drawn images in well under a second."""
    return models.load(models.resolve("tiny-shapes"), torch.device("cpu"), "fp32")


def task(kind: str, names: list[str]) -> TaskSpec:
    return TaskSpec(name="standin", kind=kind, description="stand-in", languages=["en"], split="test", metrics=names,
                    main_score=names[0], dataset=DatasetSpec(format="shapes"), source_file="standin.toml")


@functools.cache
def classification_data(multi_label: bool = False) -> ClassificationData:
    rng = np.random.default_rng(0)
    drawn = [shapes.draw(rng, CLASSES[i % 2]) for i in range(16)]
    # a quarter of the labels wrong (both classes alike), so that no metric is perfect and intervals have a width
    labels = np.array([(i + (i % 8 < 2)) % 2 for i in range(16)], dtype=np.int64)
    if multi_label:  # each image's own class, and now and then the other one too
        labels = np.eye(2, dtype=np.int64)[labels] | (rng.random((16, 2)) < 0.3)
    prompts = Prompts([shapes.class_names("en")[c] for c in CLASSES], ["a photo of a {c}."], "stand-in")
    return ClassificationData(InMemoryImages([image for image, _ in drawn], "stand-in"), labels, 2, prompts)


@functools.cache
def retrieval_data() -> RetrievalData:
    samples = shapes.caption_samples(12, seed=3)
    texts = [caption for _, captions in samples for caption in captions["en"]]
    owners = np.repeat(np.arange(12), 2)
    owners[:8] = np.repeat([1, 2, 3, 0], 2)  # images 0-3 own each other's captions: neither direction is perfect
    return RetrievalData(InMemoryImages([image for image, _ in samples], "stand-in"), texts, owners)


@functools.cache
def pair_data() -> PairData:
    """6 validation pairs then 18 test pairs; a test pair is positive when its text is its image's caption."""
    samples = shapes.caption_samples(24, seed=4)
    labels = np.array([i % 3 == 0 for i in range(24)], dtype=np.int64)
    texts = [samples[i if labels[i] else (i + 7) % 24][1]["en"][0] for i in range(24)]
    return PairData(InMemoryImages([image for image, _ in samples], "stand-in"), texts, labels[6:], 6, "title")


DATA = {"classification": classification_data, "retrieval": retrieval_data, "pair": pair_data}


def run(encoder, spec: TaskSpec, data, draws: int = 50):
    outcome = evaluate(spec, data, encoder, CACHE, "en", 8, 0)
    return outcome, bootstrap(outcome.queries, draws, seed=0)


def assert_value_and_interval(outcome, boot, name):
    value, (low, high), stderr = outcome.metrics[name], boot["ci95"][name], boot["stderr"][name]
    assert np.isfinite([value, low, high, stderr]).all(), (name, value, low, high, stderr)
    assert low <= high and stderr >= 0
    if 0 < value < 1:  # not saturated: the resampled queries must move it
        assert low < high and stderr > 0, (name, value, low, high)
    assert set(boot["ci95"]) == set(boot["stderr"]) == set(outcome.metrics)


@pytest.mark.parametrize("kind, name", [(kind.name, m.name) for kind in KINDS.values() for m in kind.metrics])
def test_every_metric_has_a_value_and_an_interval(encoder, kind, name):
    outcome, boot = run(encoder, task(kind, [name]), DATA[kind]())
    assert_value_and_interval(outcome, boot, name)
    # alone or with every metric of its kind, a metric has the same value
    everything = [m.name for m in KINDS[kind].metrics]
    assert evaluate(task(kind, everything), DATA[kind](), encoder, CACHE, "en", 8, 0).metrics[name] == outcome.metrics[name]


@pytest.mark.parametrize("name", [m.name for m in classification.METRICS if m.multi_label])
def test_multi_label_metrics_have_a_value_and_an_interval(encoder, name):
    outcome, boot = run(encoder, task("classification", [name]), classification_data(multi_label=True))
    assert_value_and_interval(outcome, boot, name)


def test_a_new_metric_record_is_all_a_metric_needs(encoder, monkeypatch, tmp_path):
    error_rate = Metric("error_rate", (classification.TOP1,), lambda hits: 1 - metrics.fraction(hits), higher_is_better=False)
    path = tmp_path / "standin.toml"
    path.write_text('name = "standin"\nkind = "classification"\ndescription = "x"\nlanguages = ["en"]\nsplit = "test"\n'
                    'metrics = ["acc1", "error_rate"]\nmain_score = "error_rate"\nprompts = "shapes"\n'
                    '[dataset]\nformat = "shapes"\nsize = 4\nseed = 1\n')
    with pytest.raises(ClipbenchError, match="metric 'error_rate' is not one of the classification metrics"):
        load_task_file(path)

    grown = dataclasses.replace(KINDS["classification"], metrics=(*classification.METRICS, error_rate))
    monkeypatch.setitem(KINDS, "classification", grown)
    assert load_task_file(path).metrics == ["acc1", "error_rate"]
    outcome, boot = run(encoder, task("classification", ["acc1", "error_rate"]), classification_data(), draws=200)
    assert outcome.metrics["error_rate"] == 1 - outcome.metrics["acc1"]
    low, high = boot["ci95"]["acc1"]
    assert boot["ci95"]["error_rate"] == pytest.approx([1 - high, 1 - low], abs=1e-12)
    assert boot["stderr"]["error_rate"] == pytest.approx(boot["stderr"]["acc1"], abs=1e-12)


def test_task_files_are_checked_against_the_records(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('name = "bad"\nkind = "retrieval"\ndescription = "x"\nlanguages = ["en"]\nsplit = "test"\n'
                    'metrics = ["mean_recall", "acc1"]\nmain_score = "mean_recall"\n[dataset]\nformat = "shapes"\nsize = 4\nseed = 1\n')
    with pytest.raises(ClipbenchError) as info:
        load_task_file(path)
    assert str(info.value) == (f"{path}: field 'metrics': metric 'acc1' is not one of the retrieval metrics "
                               f"{list(kinds.METRICS_BY_KIND['retrieval'])}")
    assert kinds.METRICS_BY_KIND == {name: tuple(m.name for m in kind.metrics) for name, kind in KINDS.items()}

    path.write_text(path.read_text().replace('kind = "retrieval"', 'kind = "linear-probe"'))
    with pytest.raises(ClipbenchError) as info:
        load_task_file(path)
    assert str(info.value) == f"{path}: field 'kind': kind 'linear-probe' is not one of {list(KINDS)}"

    # a format says which kinds of data it holds: a pair-scoring task cannot read drawn shapes
    path.write_text(path.read_text().replace('kind = "linear-probe"', 'kind = "pair"')
                    .replace('metrics = ["mean_recall", "acc1"]\nmain_score = "mean_recall"', 'metrics = ["f1"]\nmain_score = "f1"'))
    with pytest.raises(ClipbenchError) as info:
        load_task_file(path)
    assert str(info.value) == (f"{path}: field 'dataset.format': the 'shapes' format holds classification or retrieval "
                               "data, not pair; use a format of that kind or change 'kind'")


def test_classification_checks_before_the_model():
    data = classification_data(multi_label=True)
    with pytest.raises(ClipbenchError) as info:
        kinds.check(task("classification", ["map_11point", "acc1"]), data, "en")
    message = str(info.value)
    assert "multi-label" in message and "not acc1" in message and "standin.toml" in message and "\n" not in message
    kinds.check(task("classification", ["map_11point"]), data, "en")

    three = dataclasses.replace(data, prompts=Prompts(["a", "b", "c"], ["{c}"], "three.json"))
    with pytest.raises(ClipbenchError, match="three.json: 3 class names but the 'standin' data has 2 classes"):
        kinds.check(task("classification", ["acc1"]), three, "en")


def test_the_records_load_without_torch():
    """The task loader and the tables read the records: importing them must stay cheap."""
    code = ("import sys, benchmark.kinds, benchmark.tasks, benchmark.report.table; "
            "print(sorted(m for m in ('torch', 'sklearn', 'scipy') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stdout + done.stderr
