"""The README's main command on the bundled default, and proof that tiny-shapes is a real model that
notices preprocessing bugs."""

from pathlib import Path

import pytest
import torch
from PIL import Image
from torchvision import transforms

from benchmark import data as datasets, models
from benchmark.embed import ImageEmbeddingCache
from benchmark.kinds import evaluate
from benchmark.paths import DEFAULT_DATA_ROOT
from benchmark.tasks import task_registry
from helpers import clipbench_here as clipbench, read_results


ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def demo_output(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    done = clipbench("run", "--model", "tiny-shapes", "--task", "shapes", "--task", "shapes-captions", "--output", str(out))
    assert done.returncode == 0, done.stderr
    return done, out


@pytest.fixture(scope="module")
def demo(demo_output):
    done, out = demo_output
    return done, read_results(out)


def test_no_regression_against_the_committed_baseline(demo_output, tmp_path):
    """Our own regression check: the bundled model's main scores against results/baselines/tiny-shapes.json
    (1 point of tolerance for floating-point differences between machines)."""
    _, out = demo_output
    summary = tmp_path / "summary.md"
    done = clipbench("compare", str(out), "--baseline", str(ROOT / "results" / "baselines" / "tiny-shapes.json"),
                     "--tolerance", "0.01", "--summary", str(summary))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "PASS" in done.stdout and done.stdout.count("| tiny-shapes ") == 6


def test_demo_covers_every_language_and_prints_a_table(demo):
    done, results = demo
    assert sorted((r["task"], r["language"]) for r in results) == [
        ("shapes", "en"), ("shapes", "pt"), ("shapes", "zh"),
        ("shapes-captions", "en"), ("shapes-captions", "pt"), ("shapes-captions", "zh"),
    ]
    assert "| tiny-shapes | shapes " in done.stdout and "mean_recall" in done.stdout


@pytest.mark.parametrize("language", ["en", "pt", "zh"])
def test_tiny_model_is_a_real_model(demo, language):
    _, results = demo
    by_task = {r["task"]: r for r in results if r["language"] == language}
    assert by_task["shapes"]["metrics"]["acc1"] >= 0.90
    chance_r5 = 5 / by_task["shapes-captions"]["dataset"]["n_images"]
    assert by_task["shapes-captions"]["metrics"]["t2i_recall@5"] >= 5 * chance_r5


def test_result_provenance(demo):
    _, results = demo
    result = next(r for r in results if r["task"] == "shapes" and r["language"] == "pt")
    assert result["schema_version"] == 1
    assert all(0.0 <= v <= 1.0 for v in result["metrics"].values())
    assert result["model"]["checkpoint_sha256"] and result["model"]["parameters"] > 0
    assert result["dataset"]["fingerprint"] and result["dataset"]["n_images"] == 400
    assert result["prompts"]["sha256"] and result["prompts"]["origin"].endswith("pt/shapes.json")
    assert result["run"]["device"] == "cpu" and result["run"]["precision"] == "fp32"
    for package in ("torch", "open_clip_torch", "transformers"):
        assert result["run"]["versions"][package]


def test_images_are_embedded_once_per_dataset(demo):
    _, results = demo
    for task in ("shapes", "shapes-captions"):
        runs = sorted((r for r in results if r["task"] == task), key=lambda r: r["run"]["started_at"])
        reused = [r["run"]["image_embeddings_reused"] for r in results if r["task"] == task]
        assert reused.count(False) == 1 and reused.count(True) == 2, runs


def _acc1(encoder, language="en"):
    task = task_registry().get("shapes")
    return evaluate(task, datasets.load(task, language, DEFAULT_DATA_ROOT), encoder, ImageEmbeddingCache(), language, 64, 0).metrics["acc1"]


def test_preprocessing_bugs_drop_accuracy_sharply():
    encoder = models.load(models.resolve("tiny-shapes"), torch.device("cpu"), "fp32")
    correct = _acc1(encoder)
    preprocess = encoder.preprocess

    encoder.preprocess = lambda image: preprocess(Image.merge("RGB", image.convert("RGB").split()[::-1]))
    bgr = _acc1(encoder)

    encoder.preprocess = transforms.Compose([t for t in preprocess.transforms if not isinstance(t, transforms.Normalize)])
    unnormalised = _acc1(encoder)

    assert correct >= 0.9
    assert bgr <= correct - 0.3, (correct, bgr)
    assert unnormalised <= correct - 0.3, (correct, unnormalised)
