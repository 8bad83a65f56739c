"""Pair scoring (CFT-CLIP protocol) on a fixture in the `pairs` layout, through the real command line."""

import csv

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr
from sklearn.metrics import f1_score

from benchmark import models
from benchmark.data import shapes
from helpers import clipbench_here as clipbench, read_results, write_tiny_hf_clip


@pytest.fixture(scope="module")
def fixture(tmp_path_factory):
    root = tmp_path_factory.mktemp("pairs")
    model_dir = write_tiny_hf_clip(root / "model")
    folder = root / "data" / "newstt"
    (folder / "images").mkdir(parents=True)
    rows = []
    for index, (image, captions) in enumerate(shapes.caption_samples(40, seed=21)):
        name = f"{index:03d}.jpg"
        image.save(folder / "images" / name)
        split = "validation" if index < 14 else "test"
        label = int(index % 3 == 0)
        title = captions["en"][0] if label else captions["en"][1][::-1]
        rows.append({"image": name, "title": title, "summary": captions["en"][1], "label": label, "split": split})
    with open(folder / "newstt.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return root, model_dir, rows


def expected(model_dir, folder, rows, field):
    from PIL import Image

    encoder = models.load(models.resolve(f"hf:{model_dir}"), torch.device("cpu"), "fp32")
    ordered = [r for r in rows if r["split"] == "validation"] + [r for r in rows if r["split"] == "test"]
    images = encoder.encode_images(torch.stack([encoder.preprocess(Image.open(folder / "images" / r["image"])) for r in ordered]))
    texts = encoder.encode_texts([r[field] for r in ordered])
    scores = ((images * texts).sum(1).double() + 1) / 2
    n_val = sum(r["split"] == "validation" for r in rows)
    threshold = np.median(scores[:n_val].numpy())
    test, labels = scores[n_val:].numpy(), np.array([r["label"] for r in ordered[n_val:]])
    return f1_score(labels, (test > threshold).astype(int)), spearmanr(test, labels).statistic


@pytest.mark.parametrize("field", ["title", "summary"])
def test_pair_scoring_matches_the_protocol(fixture, field, tmp_path):
    root, model_dir, rows = fixture
    out = tmp_path / "out"
    done = clipbench("run", "--model", f"hf:{model_dir}", "--task", "news-thumbnails", "--text-field", field,
                     "--data-root", str(root / "data"), "--output", str(out), "--num-workers", "0")
    assert done.returncode == 0, done.stderr
    [result] = read_results(out)
    f1, rho = expected(model_dir, root / "data" / "newstt", rows, field)
    assert result["metrics"]["f1"] == pytest.approx(f1, abs=1e-9)
    assert result["metrics"]["spearman"] == pytest.approx(rho, abs=1e-9)
    assert result["variant"] == field and result["dataset"]["details"]["n_test"] == 26
    assert f"news-thumbnails.{field}.en.json" in str(next(out.rglob("*.json")))


def test_missing_validation_rows_is_a_clear_error(fixture, tmp_path):
    root, model_dir, rows = fixture
    folder = tmp_path / "data" / "newstt"
    (folder / "images").mkdir(parents=True)
    with open(folder / "newstt.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows([r for r in rows if r["split"] == "test"])
    done = clipbench("run", "--model", f"hf:{model_dir}", "--task", "news-thumbnails", "--data-root", str(tmp_path / "data"),
                     "--output", str(tmp_path / "out"))
    assert done.returncode == 1 and "no rows with split 'validation'" in done.stderr and "Traceback" not in done.stderr
