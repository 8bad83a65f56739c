"""`clipbench run --save-predictions`: one line per query beside each result, in dataset order, agreeing with
the result's metrics (ties included: equal scores go to the lower index, as the metrics count them)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from benchmark.data import shapes
from benchmark.run import predictions_file, result_file
from helpers import clipbench_here as clipbench, read_results, write_tiny_hf_clip, write_wds
from test_errors import assert_clean_failure

MODEL = ("--model", "tiny-shapes", "--num-workers", "0")


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def run_with_predictions(data: Path, out: Path, *extra: str) -> tuple[dict, list[dict]]:
    done = clipbench("run", *MODEL, "--task", str(data), "--output", str(out), "--save-predictions", *extra)
    assert done.returncode == 0, done.stderr
    [result] = read_results(out)
    [path] = out.rglob("*.predictions.jsonl")
    assert result["run"]["predictions"] == path.name and path.name.endswith(".predictions.jsonl")
    assert (path.parent / (path.name[: -len(".predictions.jsonl")] + ".json")).is_file()
    return result, lines(path)


@pytest.fixture(scope="module")
def classes(tmp_path_factory) -> tuple[Path, list[int]]:
    """16 images; classes 0 and 1 have the same name, so their logits tie exactly on every image."""
    samples = shapes.classification_samples(16, seed=5)
    names = shapes.class_names("en")
    names[1] = names[0]
    root = write_wds(tmp_path_factory.mktemp("cls") / "data", [{"image": i, "cls": c} for i, c in samples],
                     classnames=names, templates=["a {c}."])
    return root, [c for _, c in samples]


@pytest.fixture(scope="module")
def captions(tmp_path_factory) -> tuple[Path, list[int]]:
    """10 images with their captions; image 6 repeats image 0 and image 3 repeats image 2's captions, so both
    directions hold exact ties."""
    drawn = shapes.caption_samples(10, seed=8)
    images = [image for image, _ in drawn]
    texts = [c["en"] for _, c in drawn]
    images[6] = images[0]
    texts[3] = texts[2]
    root = write_wds(tmp_path_factory.mktemp("ret") / "data", [{"image": i, "txt": t} for i, t in zip(images, texts)],
                     dataset_type="retrieval")
    return root, [image for image, t in enumerate(texts) for _ in t]


def test_classification_lines_agree_with_the_metrics(classes, tmp_path):
    data, labels = classes
    result, found = run_with_predictions(data, tmp_path / "out")
    assert len(found) == len(labels) == result["dataset"]["n_images"]
    for number, line in enumerate(found):
        assert list(line) == ["index", "label", "top5", "top5_scores"]
        assert line["index"] == number and line["label"] == labels[number]
        assert len(line["top5"]) == len(set(line["top5"])) == 5 and len(line["top5_scores"]) == 5
        assert line["top5_scores"] == sorted(line["top5_scores"], reverse=True)
        # the planted tie: class 1 scores exactly as class 0, and ranks right after it
        assert 1 not in line["top5"] or line["top5"].index(1) == line["top5"].index(0) + 1
    acc1 = np.mean([line["top5"][0] == line["label"] for line in found])
    acc5 = np.mean([line["label"] in line["top5"] for line in found])
    assert acc1 == result["metrics"]["acc1"] and acc5 == result["metrics"]["acc5"]
    assert any(0 in line["top5"] and 1 in line["top5"] for line in found)  # the tie was met


def test_limit_and_bootstrap_keep_the_evaluated_queries(classes, tmp_path):
    data, _ = classes
    result, found = run_with_predictions(data, tmp_path / "out", "--limit", "6", "--bootstrap", "10")
    assert [line["index"] for line in found] == list(range(6))  # indices into the subset, in subset order
    assert np.mean([line["top5"][0] == line["label"] for line in found]) == result["metrics"]["acc1"]


def recall(found: list[dict], direction: str, correct, k: int) -> float:
    rows = [line for line in found if line["direction"] == direction]
    return float(np.mean([any(correct(line["query"], item) for item in line["top10"][:k]) for line in rows]))


def test_retrieval_lines_agree_with_the_metrics(captions, tmp_path):
    data, text_to_image = captions
    result, found = run_with_predictions(data, tmp_path / "out")
    n_texts, n_images = len(text_to_image), 10
    assert result["dataset"]["n_texts"] == n_texts and len(found) == n_texts + n_images
    assert [(line["direction"], line["query"]) for line in found] == \
        [("t2i", q) for q in range(n_texts)] + [("i2t", q) for q in range(n_images)]
    for line in found:
        assert list(line) == ["query", "direction", "top10"]
        assert len(line["top10"]) == len(set(line["top10"])) == (n_images if line["direction"] == "t2i" else 10)
        if line["direction"] == "t2i":  # the planted tie: image 6 is image 0, and comes right after it
            assert line["top10"].index(6) == line["top10"].index(0) + 1
    tied = [text_to_image.index(3) + j for j in range(text_to_image.count(3))]  # image 3's captions repeat image 2's
    for line in found:
        if line["direction"] == "i2t":
            twins = [text_to_image.index(2) + j for j in range(len(tied))]
            for first, second in zip(twins, tied):
                if first in line["top10"] and second in line["top10"]:
                    assert line["top10"].index(first) < line["top10"].index(second)
    for k in (1, 5, 10):
        assert recall(found, "t2i", lambda q, image: text_to_image[q] == image, k) == result["metrics"][f"t2i_recall@{k}"]
        assert recall(found, "i2t", lambda q, text: text_to_image[text] == q, k) == result["metrics"][f"i2t_recall@{k}"]


def test_pair_scoring_lines(tmp_path):
    model_dir = write_tiny_hf_clip(tmp_path / "model")
    folder = tmp_path / "data" / "newstt"
    (folder / "images").mkdir(parents=True)
    rows = []
    for index, (image, texts) in enumerate(shapes.caption_samples(12, seed=4)):
        image.save(folder / "images" / f"{index:03d}.jpg")
        rows.append({"image": f"{index:03d}.jpg", "title": texts["en"][index % 2], "summary": texts["en"][1],
                     "label": index % 2, "split": "validation" if index < 4 else "test"})
    with open(folder / "newstt.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    out = tmp_path / "out"
    done = clipbench("run", "--model", f"hf:{model_dir}", "--task", "news-thumbnails", "--text-field", "title",
                     "--data-root", str(tmp_path / "data"), "--output", str(out), "--num-workers", "0", "--save-predictions")
    assert done.returncode == 0, done.stderr
    [result] = read_results(out)
    [path] = out.rglob("*.predictions.jsonl")
    found = lines(path)
    threshold = result["dataset"]["details"]["threshold"]
    assert [line["index"] for line in found] == list(range(8))
    assert [line["label"] for line in found] == [r["label"] for r in rows[4:]]
    assert all(list(line) == ["index", "score", "label", "predicted"] for line in found)
    assert all(line["predicted"] == int(line["score"] > threshold) for line in found)
    from sklearn.metrics import f1_score
    assert f1_score([x["label"] for x in found], [x["predicted"] for x in found], zero_division=0.0) == result["metrics"]["f1"]


def test_no_file_without_the_flag(classes, tmp_path):
    data, _ = classes
    out = tmp_path / "out"
    done = clipbench("run", *MODEL, "--task", str(data), "--output", str(out), "--limit", "4")
    assert done.returncode == 0, done.stderr
    [result] = read_results(out)
    assert "predictions" not in result["run"] and not list(out.rglob("*.jsonl"))


def test_an_unwritable_predictions_path_fails_before_the_model_loads(classes, tmp_path):
    data, _ = classes
    (tmp_path / "empty").mkdir()
    models = tmp_path / "models.toml"
    models.write_text(f'[[model]]\nname = "never-loads"\nbackend = "transformers"\nid = "{tmp_path / "empty"}"\nlanguages = ["en"]\n')
    out = tmp_path / "out"
    blocked = predictions_file(result_file(out, "never-loads", None, "data", str(data), None, "en", None, None))
    blocked.mkdir(parents=True)  # a folder where the predictions file would go
    done = clipbench("run", "--model", "never-loads", "--task", str(data), "--output", str(out), "--save-predictions",
                     env={"CLIPBENCH_MODELS": str(models)})
    assert_clean_failure(done, 1, str(blocked), "is a folder", out=out)
    assert "could not load" not in done.stderr
    assert blocked.is_dir() and not [p for p in out.rglob("*") if p.is_file()]


def test_a_failed_result_write_keeps_the_earlier_files(tmp_path, monkeypatch):
    """The result write fails after the lines are written: the earlier result and lines stay, nothing is left over."""
    import torch

    from benchmark.errors import ClipbenchError
    from benchmark.kinds import Outcome
    from benchmark.results import Result
    from benchmark.run import write_outcome
    from benchmark.tasks import task_registry

    path = tmp_path / "shapes.en.json"
    path.write_text("earlier result\n")
    predictions_file(path).write_text("earlier lines\n")
    outcome = Outcome(2, 0, scores={"logits": torch.tensor([[1.0, 2.0], [3.0, 3.0]]), "labels": torch.tensor([1, 0])})

    def full_disk(self, where):
        raise ClipbenchError(f"cannot write {where} (No space left on device); nothing was changed there")

    monkeypatch.setattr(Result, "write", full_disk)
    with pytest.raises(ClipbenchError, match="No space left"):
        write_outcome(Result.model_construct(), path, task_registry().get("shapes"), outcome, True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shapes.en.json", "shapes.en.predictions.jsonl"]
    assert path.read_text() == "earlier result\n" and predictions_file(path).read_text() == "earlier lines\n"

    monkeypatch.undo()
    written = write_outcome(Result.model_construct(), path, task_registry().get("shapes"), outcome, True)
    assert lines(predictions_file(written)) == [
        {"index": 0, "label": 1, "top5": [1, 0], "top5_scores": [2.0, 1.0]},
        {"index": 1, "label": 0, "top5": [0, 1], "top5_scores": [3.0, 3.0]}]  # the exact tie: the lower class first


def test_kind_lines_in_process_multi_label_many_to_many_and_chunks():
    """The kinds' line functions on planted embeddings: multi-label labels, many-to-many captions (only named
    images are image->text queries), and chunk boundaries that change nothing."""
    import torch

    from benchmark import metrics
    from benchmark.kinds import classification, retrieval

    logits = torch.tensor([[0.5, 0.5, 0.1], [0.2, 0.9, 0.9]])
    found = list(classification.predictions({"logits": logits, "labels": torch.tensor([[1, 0, 1], [0, 0, 0]])}))
    assert [(x["label"], x["top5"]) for x in found] == [([0, 2], [0, 1, 2]), ([], [1, 2, 0])]

    # quarter-integer embeddings: every dot product is exact in float32 whatever the summation order, so the
    # planted ties are exact ties on any BLAS and chunking cannot change a score
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(-4, 5, (7, 4), generator=generator).float() / 4
    images[5] = images[2]  # an exact tie in every text->image row
    texts = torch.randint(-4, 5, (9, 4), generator=generator).float() / 4
    pairs = torch.tensor([[0, 0], [1, 0], [2, 2], [3, 5], [4, 1], [5, 3], [6, 3], [7, 6], [8, 2]])  # (text, image)
    found = list(retrieval.predictions({"images": images, "texts": texts, "image_queries": torch.unique(pairs[:, 1])}))
    t2i, i2t = metrics.retrieval_ranks_multi(images, texts, pairs)
    assert [x["query"] for x in found if x["direction"] == "i2t"] == [0, 1, 2, 3, 5, 6]  # image 4 has no caption
    for line in found:
        if line["direction"] == "t2i":
            assert line["top10"].index(5) == line["top10"].index(2) + 1
    rows = {(x["direction"], x["query"]): x["top10"] for x in found}
    for text, rank in enumerate(t2i.tolist()):  # rank of the first correct image, as the metric counts it
        correct = {int(i) for t, i in pairs.tolist() if t == text}
        assert min(rows["t2i", text].index(i) for i in correct) == rank
    for image, rank in zip(torch.unique(pairs[:, 1]).tolist(), i2t.tolist()):
        correct = {t for t, i in pairs.tolist() if i == image}
        positions = [rows["i2t", image].index(t) for t in correct if t in rows["i2t", image]]
        assert min(positions, default=10) == rank
    whole = torch.cat(list(metrics.retrieval_top(texts, images, 10)))
    assert torch.equal(whole, torch.cat(list(metrics.retrieval_top(texts, images, 10, chunk_size=2))))
