"""The clip-benchmark protocol's metric settings against CLIP_benchmark 1.6.2's own code (the pip package; its
metric code is that of LAION-AI/CLIP_benchmark @ b4b6a33c8dc01fe44acf24f24f71ac7585d52571): tie_rule topk-per-k,
multilabel_map non-interpolated, topk_beyond_classes nan, recall_argmax all-classes. Its evaluate() functions run
on a stand-in model that serves fixed embeddings, on data full of exact ties, and ours must give its numbers; the
default protocol must give other numbers on the same data (so that these tests can fail)."""

from __future__ import annotations

import builtins
import io
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from benchmark import kinds, metrics
from benchmark.kinds import KINDS, bootstrap, classification, measure, retrieval
from benchmark.protocols import resolve
from benchmark.tasks import task_registry
from helpers import clipbench_here as clipbench, read_results, write_wds
from test_errors import assert_clean_failure

UPSTREAM = resolve("clip-benchmark").settings("any", "en")
DEFAULT = resolve("clipbench").settings("any", "en")
CLASSIFICATION = ["acc1", "acc5", "mean_per_class_recall"]
RECALLS = [f"{d}_recall@{k}" for d in ("t2i", "i2t") for k in (1, 5, 10)]


@pytest.fixture
def upstream_classification(monkeypatch):
    """clip_benchmark.metrics.zeroshot_classification, whose accuracy() converts a 1-element array with float(),
    which numpy >= 2.4 refuses: the module's `float` takes the single element instead; the rest runs as published."""
    import clip_benchmark.metrics.zeroshot_classification as module

    monkeypatch.setattr(module, "float", lambda value: builtins.float(value.item() if hasattr(value, "item") else value),
                        raising=False)
    return module


def quarter_vectors(seed: int, n: int, dim: int = 16) -> torch.Tensor:
    """Rows with four entries of ±1 and zeros elsewhere: L2-normalised every entry is ±0.5 exactly, so every score
    (100 x a sum of ±0.25) is exact in float32 whatever the summation order or chunking, and equal scores abound."""
    generator = torch.Generator().manual_seed(seed)
    out = torch.zeros(n, dim)
    for row in out:
        row[torch.randperm(dim, generator=generator)[:4]] = torch.randint(0, 2, (4,), generator=generator).float() * 2 - 1
    return out


def nudged(rows: torch.Tensor, seed: int, moves: int = 2) -> torch.Tensor:
    """Each row with `moves` of its nonzero entries moved to zero positions: still four entries of ±1, similar
    to the original (cosine 0.5 for two moves) without being it."""
    generator = torch.Generator().manual_seed(seed)
    out = rows.clone()
    for row in out:
        for _ in range(moves):
            on, off = torch.nonzero(row).view(-1), torch.nonzero(row == 0).view(-1)
            source = on[torch.randint(0, len(on), (1,), generator=generator)]
            row[off[torch.randint(0, len(off), (1,), generator=generator)]] = row[source]
            row[source] = 0
    return out


class StandIn:
    """CLIP_benchmark's model interface over fixed raw embeddings: the 'images' and 'tokens' are row indices."""

    def __init__(self, images: torch.Tensor, texts: torch.Tensor):
        self.images, self.texts = images, texts

    def encode_image(self, index):
        return self.images[index]

    def encode_text(self, index):
        return self.texts[index]


class Loader:
    def __init__(self, batches: list, classes: list[str] | None = None):
        self.batches, self.dataset = batches, SimpleNamespace(classes=classes)

    def __iter__(self):
        return iter(self.batches)


def tokenizer(texts: list[str]) -> torch.Tensor:
    return torch.tensor([int(text.split()[-1]) for text in texts])


def clip_benchmark_classification(module, images, classes, labels, batch_size=16) -> dict:
    """CLIP_benchmark's zeroshot_classification.evaluate() on raw embeddings: class i is named 'class i', one
    template, so its classifier is each class embedding normalised (exactly, for quarter vectors)."""
    names = [f"class {i}" for i in range(len(classes))]
    loader = Loader([(torch.arange(s, min(s + batch_size, len(images))), labels[s:s + batch_size])
                     for s in range(0, len(images), batch_size)], names)
    return module.evaluate(StandIn(images, classes), loader, tokenizer, names, ["{c}"], "cpu", amp=False)


def ours_classification(images, classes, labels, settings, names) -> dict:
    logits = metrics.classifier_logits(F.normalize(images, dim=-1), F.normalize(classes, dim=-1))
    return measure(KINDS["classification"], {"logits": logits, "labels": labels, "settings": settings}, names).values()


def single_label_case(seed: int, n: int = 80, classes: int = 16):
    """Images near their class's embedding; classes 2 and 5 share one embedding (every image's logits tie there),
    and no image is of class 2, so the argmax over every class (lowest index among equals) can name an absent class."""
    embeddings = quarter_vectors(seed, classes)
    embeddings[5] = embeddings[2]
    labels = torch.randint(0, classes, (n,), generator=torch.Generator().manual_seed(seed + 1))
    labels[labels == 2] = 5
    return nudged(embeddings[labels], seed + 2), embeddings, labels


# ------------------------------------------------------------------------------------------ classification

@pytest.mark.filterwarnings("ignore:y_pred contains classes not in y_true")  # class 2, on purpose
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_classification_equals_clip_benchmark_evaluate_with_ties(upstream_classification, seed):
    images, classes, labels = single_label_case(seed)
    theirs = clip_benchmark_classification(upstream_classification, images, classes, labels)
    ours = ours_classification(images, classes, labels, UPSTREAM, CLASSIFICATION)
    assert ours == theirs  # fractions of counts: equal to the last bit
    assert 0.2 < ours["acc1"] < ours["acc5"]
    # the default protocol counts the ties (and the absent class) otherwise: these tests can fail
    default = ours_classification(images, classes, labels, DEFAULT, CLASSIFICATION)
    assert default["acc1"] != theirs["acc1"] and default["mean_per_class_recall"] != theirs["mean_per_class_recall"]


@pytest.mark.parametrize("classes", [2, 3, 4])
def test_acc5_below_five_classes_is_nan_as_clip_benchmark(upstream_classification, classes):
    images, embeddings, labels = single_label_case(classes, n=40, classes=16)
    embeddings, labels = embeddings[:classes], labels % classes
    theirs = clip_benchmark_classification(upstream_classification, images, embeddings, labels)
    ours = ours_classification(images, embeddings, labels, UPSTREAM, CLASSIFICATION)
    assert np.isnan(theirs["acc5"]) and np.isnan(ours["acc5"])
    assert ours["acc1"] == theirs["acc1"] and ours["mean_per_class_recall"] == theirs["mean_per_class_recall"]
    assert ours_classification(images, embeddings, labels, DEFAULT, ["acc5"])["acc5"] == 1.0  # k capped
    # a bootstrap of an undefined metric is undefined, and the others keep their intervals
    logits = metrics.classifier_logits(F.normalize(images, dim=-1), F.normalize(embeddings, dim=-1))
    queries = measure(KINDS["classification"], {"logits": logits, "labels": labels, "settings": UPSTREAM}, CLASSIFICATION)
    drawn = bootstrap(queries, 20, seed=0)
    assert np.isnan(drawn["stderr"]["acc5"]) and np.isfinite(drawn["stderr"]["acc1"])


def multi_label_case(seed: int, n: int = 60, classes: int = 8):
    """Quarter-vector logits (ties within every class column) and 0/1 targets; the last class has no positive."""
    images, embeddings = quarter_vectors(seed, n), quarter_vectors(seed + 1, classes)
    targets = (torch.rand(n, classes, generator=torch.Generator().manual_seed(seed + 2)) < 0.3).long()
    targets[:, -1] = 0
    return images, embeddings, targets


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_multi_label_mean_average_precision_equals_clip_benchmark(upstream_classification, seed):
    images, embeddings, targets = multi_label_case(seed)
    theirs = clip_benchmark_classification(upstream_classification, images, embeddings, targets)
    assert list(theirs) == ["mean_average_precision"]
    ours = ours_classification(images, embeddings, targets, UPSTREAM, ["mean_average_precision", "map_11point"])
    # CLIP_benchmark's float32 against our float64: the tie order alone moves it by far more than this
    assert ours["mean_average_precision"] == pytest.approx(theirs["mean_average_precision"], abs=1e-6)
    lower = ours_classification(images, embeddings, targets, DEFAULT, ["mean_average_precision"])
    assert abs(lower["mean_average_precision"] - theirs["mean_average_precision"]) > 1e-4
    assert abs(ours["map_11point"] - ours["mean_average_precision"]) > 1e-3  # another number: another name
    # per class, and the class without positives counts as 0 in the mean
    logits = metrics.classifier_logits(F.normalize(images, dim=-1), F.normalize(embeddings, dim=-1))
    per_class = upstream_classification.average_precision_per_class(logits, targets)
    ours_per_class = metrics.average_precision_per_class(logits.numpy(), targets.numpy(), "topk-per-k")
    np.testing.assert_allclose(ours_per_class, per_class.numpy(), atol=1e-6)
    assert ours_per_class[-1] == 0.0


def test_without_ties_the_average_precision_is_sklearns():
    """What "non-interpolated" means: without equal logits, CLIP_benchmark's AP of a class with positives is
    sklearn's average_precision_score, whichever tie rule."""
    from sklearn.metrics import average_precision_score

    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(200, 6, generator=generator) * 30
    targets = (torch.rand(200, 6, generator=generator) < 0.2).long()
    for rule in ("topk-per-k", "lower-index"):
        ours = metrics.average_precision_per_class(logits.numpy(), targets.numpy(), rule)
        expected = [average_precision_score(targets[:, c].numpy(), logits[:, c].numpy()) for c in range(6)]
        np.testing.assert_allclose(ours, expected, atol=1e-12)


def test_the_protocol_renames_map_11point_and_nothing_else():
    voc = task_registry().get("voc-2007-classification")
    renamed = kinds.under_protocol(voc, UPSTREAM)
    assert (renamed.metrics, renamed.main_score) == (["mean_average_precision"], "mean_average_precision")
    assert kinds.under_protocol(voc, DEFAULT) is voc
    shapes = task_registry().get("shapes")
    assert kinds.under_protocol(shapes, UPSTREAM) is shapes
    assert kinds.under_protocol(task_registry().get("flickr30k"), UPSTREAM).metrics == task_registry().get("flickr30k").metrics


# ------------------------------------------------------------------------------------------ retrieval

def retrieval_case(seed: int, n_images: int = 60, per_image: int = 2):
    """Images 45.. repeat images 0..; each image's two captions are one caption twice: exact ties both ways."""
    images = quarter_vectors(seed, n_images)
    images[45:] = images[:n_images - 45]
    owners = torch.arange(n_images).repeat_interleave(per_image)
    texts = nudged(images[owners], seed + 1)
    texts[1::2] = texts[0::2]
    return images, texts, owners


def clip_benchmark_retrieval(images, texts, owners, batch_size=8) -> dict:
    """CLIP_benchmark's zeroshot_retrieval.evaluate(): a text's 'string' names its row."""
    from clip_benchmark.metrics.zeroshot_retrieval import evaluate

    batches = []
    for start in range(0, len(images), batch_size):
        index = torch.arange(start, min(start + batch_size, len(images)))
        batches.append((index, [[f"text {t}" for t in torch.nonzero(owners == i).view(-1).tolist()] for i in index.tolist()]))
    theirs = evaluate(StandIn(images, texts), Loader(batches), tokenizer, "cpu", amp=False, recall_k_list=[1, 5, 10])
    return {f"{ours}_recall@{k}": theirs[f"{name}_recall@{k}"] for ours, name in (("t2i", "image_retrieval"),
                                                                                   ("i2t", "text_retrieval")) for k in (1, 5, 10)}


def ours_retrieval(images, texts, owners, settings, chunk_size=1024) -> dict:
    images, texts = F.normalize(images, dim=-1), F.normalize(texts, dim=-1)
    if settings["tie_rule"] == "topk-per-k":
        t2i, i2t = metrics.retrieval_found(images, texts, owners, chunk_size=chunk_size)
    else:
        t2i, i2t = metrics.retrieval_ranks(images, texts, owners, chunk_size=chunk_size)
    return measure(KINDS["retrieval"], {"t2i": t2i, "i2t": i2t}, RECALLS + ["mean_recall"]).values()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_retrieval_equals_clip_benchmark_evaluate_with_ties(seed):
    images, texts, owners = retrieval_case(seed)
    theirs = clip_benchmark_retrieval(images, texts, owners)
    for chunk in (1, 7, 1024):  # chunking the queries keeps each row's topk
        ours = ours_retrieval(images, texts, owners, UPSTREAM, chunk)
        for name in RECALLS:
            assert ours[name] == pytest.approx(theirs[name], abs=1e-6), (chunk, name)  # theirs: a float32 mean
    assert ours["mean_recall"] == pytest.approx(np.mean(list(theirs.values())), abs=1e-6)
    assert 0.1 < ours["t2i_recall@1"] < ours["t2i_recall@10"] < 1.0
    default = ours_retrieval(images, texts, owners, DEFAULT)
    assert any(abs(default[name] - theirs[name]) > 1e-3 for name in RECALLS)


def test_retrieval_equals_clip_benchmark_on_real_valued_embeddings():
    """Gaussian embeddings with duplicated images and captions: the scores are CLIP_benchmark's bit for bit
    (texts @ images.T, and its transpose for image->text), so the ties are the same ties."""
    generator = torch.Generator().manual_seed(5)
    images = torch.randn(50, 24, generator=generator)
    images[40:] = images[:10]
    owners = torch.arange(50).repeat_interleave(3)
    texts = images[owners] + 1.5 * torch.randn(150, 24, generator=generator)
    texts[2::3] = texts[0::3]
    theirs, ours = clip_benchmark_retrieval(images, texts, owners), ours_retrieval(images, texts, owners, UPSTREAM)
    for name in RECALLS:
        assert ours[name] == pytest.approx(theirs[name], abs=1e-6), name


def test_many_to_many_under_topk_per_k_is_clip_benchmarks_recall_at_k():
    from clip_benchmark.metrics.zeroshot_retrieval import recall_at_k

    images, texts, owners = retrieval_case(3)
    images, texts = F.normalize(images, dim=-1), F.normalize(texts, dim=-1)
    pairs = torch.cat([torch.stack([torch.arange(len(owners)), owners], 1), torch.tensor([[0, 7], [4, 31]])])
    pairs = pairs[pairs[:, 1] != 12]  # image 12 is named by no text: no image->text query
    positive = torch.zeros(len(texts), len(images), dtype=torch.bool)
    positive[pairs[:, 0], pairs[:, 1]] = True
    t2i, i2t = metrics.retrieval_found(images, texts, positives=pairs, chunk_size=9)
    scores = texts @ images.T
    queried = torch.unique(pairs[:, 1])
    for column, k in enumerate((1, 5, 10)):
        assert torch.equal(t2i[:, column], recall_at_k(scores, positive, k) > 0)
        assert torch.equal(i2t[:, column], recall_at_k(scores.T[queried], positive.T[queried], k) > 0)


# ------------------------------------------------------------------------------------------ prediction lines

@pytest.mark.filterwarnings("ignore:y_pred contains classes not in y_true")
def test_prediction_lines_show_what_topk_per_k_counted():
    images, classes, labels = single_label_case(0)
    logits = metrics.classifier_logits(F.normalize(images, dim=-1), F.normalize(classes, dim=-1))
    scores = {"logits": logits, "labels": labels, "settings": UPSTREAM}
    values = measure(KINDS["classification"], scores, ["acc1", "acc5"]).values()
    lines = list(classification.predictions(scores, chunk_size=7))
    assert values["acc1"] == np.mean([line["top5"][0] == line["label"] for line in lines])
    assert values["acc5"] == np.mean([line["label"] in line["top5"] for line in lines])
    default_lines = list(classification.predictions({**scores, "settings": DEFAULT}))
    assert [line["top5"] for line in lines] != [line["top5"] for line in default_lines]
    few = {"logits": logits[:, :3], "labels": labels % 3, "settings": UPSTREAM}  # acc5 NaN: acc1's one topk
    assert {len(line["top5"]) for line in classification.predictions(few)} == {1}

    images, texts, owners = retrieval_case(1)
    images, texts = F.normalize(images, dim=-1), F.normalize(texts, dim=-1)
    t2i, i2t = metrics.retrieval_found(images, texts, owners)
    lines = list(retrieval.predictions({"images": images, "texts": texts, "image_queries": None, "settings": UPSTREAM}))
    for column, k in enumerate((1, 5, 10)):
        found = [(owners[line["query"]].item() in line[f"top{k}"]) if line["direction"] == "t2i" else
                 any(owners[t].item() == line["query"] for t in line[f"top{k}"]) for line in lines]
        assert found == t2i[:, column].tolist() + i2t[:, column].tolist()


# ------------------------------------------------------------------------------------------ protocol files

def test_a_bad_metric_setting_in_a_protocol_file_is_one_line(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text('name = "mine"\ndescription = "x"\ntie_rule = "random"\n')
    done = clipbench("run", "--model", "tiny-shapes", "--task", "shapes", "--protocol", str(path), "-o", str(tmp_path / "o"))
    assert_clean_failure(done, 1, str(path), "field 'tie_rule'", "'lower-index' or 'topk-per-k'", out=tmp_path)
    # the metric settings are the protocol's, for every task: not per task
    path.write_text('name = "mine"\ndescription = "x"\n[tasks.shapes]\nmultilabel_map = "non-interpolated"\n')
    done = clipbench("run", "--model", "tiny-shapes", "--task", "shapes", "--protocol", str(path), "-o", str(tmp_path / "o"))
    assert_clean_failure(done, 1, str(path), "field 'tasks.shapes.multilabel_map': unknown key", out=tmp_path)


def test_the_protocol_says_what_it_changes():
    spec = resolve("clip-benchmark")
    assert spec.changes() == ("preprocessing model; tie_rule topk-per-k; multilabel_map non-interpolated; "
                              "topk_beyond_classes nan; recall_argmax all-classes; precision fp16")
    assert resolve("altclip") == spec
    assert {key: UPSTREAM[key] for key in ("tie_rule", "multilabel_map", "topk_beyond_classes", "recall_argmax")} == {
        "tie_rule": "topk-per-k", "multilabel_map": "non-interpolated", "topk_beyond_classes": "nan",
        "recall_argmax": "all-classes"}
    assert "multilabel_map" not in DEFAULT  # absent = the default, as in every result written before the setting


# ------------------------------------------------------------------------------------------ through the CLI

def multi_label_wds(root: Path) -> Path:
    import webdataset

    from benchmark.data import shapes

    (root / "test").mkdir(parents=True)
    drawn = shapes.classification_samples(12, seed=3)
    with webdataset.ShardWriter(str(root / "test" / "%d.tar"), maxcount=50, verbose=0) as sink:
        for index, (image, label) in enumerate(drawn):
            buffer = io.BytesIO()
            image.save(buffer, format="PNG")
            target = np.zeros(4, dtype=np.int64)
            target[label % 4] = 1
            target[(index * 7) % 4] = 1
            sink.write({"__key__": "s%07d" % index, "png": buffer.getvalue(), "npy": target})
    (root / "test" / "nshards.txt").write_text("1\n")
    (root / "classnames.txt").write_text("\n".join(shapes.class_names("en")[:4]) + "\n")
    (root / "zeroshot_classification_templates.txt").write_text("a {c}.\n")
    (root / "dataset_type.txt").write_text("multilabel\n")
    return root


def test_clip_benchmark_protocol_through_the_cli(tmp_path):
    from benchmark.data import shapes

    three = write_wds(tmp_path / "three", [{"image": image, "cls": label % 3} for image, label in
                                            shapes.classification_samples(12, seed=4)],
                      classnames=shapes.class_names("en")[:3], templates=["a {c}."])
    multi = multi_label_wds(tmp_path / "multi")
    tasks = ("--task", str(three), "--task", str(multi))
    for out, extra in (("cb", ("--protocol", "clip-benchmark", "--group", "cb", "--save-predictions",
                                  "--precision", "fp32")), ("default", ())):
        done = clipbench("run", "--model", "tiny-shapes", *tasks, "-j", "0", "-o", str(tmp_path / out), *extra)
        assert done.returncode == 0, done.stderr
    cb = {r["task"]: r for r in read_results(tmp_path / "cb")}
    default = {r["task"]: r for r in read_results(tmp_path / "default")}
    assert cb["multi"]["main_score"] == "mean_average_precision" and list(cb["multi"]["metrics"]) == ["mean_average_precision"]
    assert default["multi"]["main_score"] == "map_11point" and list(default["multi"]["metrics"]) == ["map_11point"]
    assert cb["multi"]["protocol"]["settings"]["multilabel_map"] == "non-interpolated"
    assert np.isnan(cb["three"]["metrics"]["acc5"]) and default["three"]["metrics"]["acc5"] == 1.0
    [lines_path] = (tmp_path / "cb").rglob("three*.predictions.jsonl")
    lines = [json.loads(line) for line in lines_path.read_text().splitlines()]
    assert {len(line["top5"]) for line in lines} == {1}
    assert cb["three"]["metrics"]["acc1"] == np.mean([line["top5"][0] == line["label"] for line in lines])
    # one table, two groups, two protocols: the two mAPs are two columns, each filled by the group that has it
    done = clipbench("table", str(tmp_path / "cb"), str(tmp_path / "default"), "--format", "csv")
    assert done.returncode == 0, done.stderr
    header = done.stdout.splitlines()[0]
    assert "multi (mean_average_precision)" in header and "multi (map_11point)" in header
