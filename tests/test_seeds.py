"""Training seeds (checkpoint groups), bootstrap intervals and seeded subsets."""

import numpy as np
import pytest
import torch

from benchmark.kinds import KINDS, bootstrap, measure
from benchmark.specs import ModelSpec
from helpers import clipbench_here as clipbench, read_results, write_tiny_hf_clip


def classification_queries(logits, labels, names):
    return measure(KINDS["classification"], {"logits": logits, "labels": labels}, names)


def retrieval_queries(t2i, i2t, names):
    return measure(KINDS["retrieval"], {"t2i": t2i, "i2t": i2t}, names)


def _logits_with_accuracy(rng, n, classes, p):
    """Logits whose argmax is right for a Bernoulli(p) draw of the samples."""
    labels = rng.integers(0, classes, n)
    hit = rng.random(n) < p
    predicted = np.where(hit, labels, (labels + 1) % classes)
    logits = np.zeros((n, classes))
    logits[np.arange(n), predicted] = 1.0
    return torch.tensor(logits), torch.tensor(labels)


def test_bootstrap_interval_covers_the_true_accuracy_95_percent_of_the_time():
    rng = np.random.default_rng(0)
    trials, covered, true_p = 200, 0, 0.7
    for trial in range(trials):
        logits, labels = _logits_with_accuracy(rng, 300, 10, true_p)
        result = bootstrap(classification_queries(logits, labels, ["acc1"]), draws=300, seed=trial)
        low, high = result["ci95"]["acc1"]
        covered += low <= true_p <= high
    coverage = covered / trials
    # binomial sd of the coverage estimate at 200 trials is ~0.015
    assert 0.90 <= coverage <= 0.99, coverage


def test_bootstrap_standard_error_matches_the_binomial_formula():
    rng = np.random.default_rng(1)
    logits, labels = _logits_with_accuracy(rng, 2000, 5, 0.6)
    acc = (logits.argmax(1) == labels).double().mean().item()
    result = bootstrap(classification_queries(logits, labels, ["acc1"]), draws=2000, seed=0)
    expected = np.sqrt(acc * (1 - acc) / 2000)
    assert result["stderr"]["acc1"] == pytest.approx(expected, rel=0.1)


def test_bootstrap_is_reproducible_with_its_seed():
    ranks = torch.tensor([0, 3, 12, 1, 0, 7]), torch.tensor([0, 0, 2])
    names = ["t2i_recall@1", "i2t_recall@5", "mean_recall"]
    first = bootstrap(retrieval_queries(*ranks, names), 100, seed=5)
    assert first == bootstrap(retrieval_queries(*ranks, names), 100, seed=5)
    assert first != bootstrap(retrieval_queries(*ranks, names), 100, seed=6)


def test_checkpoint_variants_replace_fields():
    spec = ModelSpec(name="m", backend="open_clip", id="ViT-B-32", pretrained="a.pt",
                     checkpoints=[{"name": "seed0", "pretrained": "s0.pt"}, {"name": "seed1", "pretrained": "s1.pt"}])
    variants = spec.variants()
    assert [(name, v.pretrained, v.id) for name, v in variants] == [("seed0", "s0.pt", "ViT-B-32"), ("seed1", "s1.pt", "ViT-B-32")]
    assert ModelSpec(name="m", backend="open_clip", id="x").variants()[0][0] is None


@pytest.fixture(scope="module")
def two_seeds(tmp_path_factory):
    root = tmp_path_factory.mktemp("seeds")
    return [write_tiny_hf_clip(root / f"seed{s}", seed=s) for s in (0, 1)]


def test_a_spec_with_several_checkpoints_writes_one_result_each(two_seeds, tmp_path):
    models_file = tmp_path / "models.toml"
    models_file.write_text(
        '[[model]]\nname = "tiny-pair"\nbackend = "transformers"\nid = "unused"\nlanguages = ["en"]\n'
        + "".join(f'[[model.checkpoints]]\nname = "seed{s}"\nid = "{path}"\n' for s, path in enumerate(two_seeds))
    )
    out = tmp_path / "out"
    done = clipbench("run", "--model", "tiny-pair", "--task", "shapes", "--output", str(out), "--num-workers", "0",
                     "--limit", "32", "--seed", "7", env={"CLIPBENCH_MODELS": str(models_file)})
    assert done.returncode == 0, done.stderr
    results = read_results(out)
    assert sorted(r["model"]["checkpoint_name"] for r in results) == ["seed0", "seed1"]
    assert {r["model"]["group"] for r in results} == {"tiny-pair"}
    assert len({r["model"]["checkpoint_sha256"] for r in results}) == 2
    assert all(r["dataset"]["n_images"] == 32 and r["limit"] == {"n": 32, "seed": 7} for r in results)
    # the same seeded subset for both checkpoints
    assert len({r["dataset"]["fingerprint"] for r in results}) == 1


def test_group_bootstrap_and_limit_are_recorded(two_seeds, tmp_path):
    out = tmp_path / "out"
    for path in two_seeds:
        done = clipbench("run", "--model", f"hf:{path}", "--task", "shapes-captions", "--group", "tiny-group",
                         "--bootstrap", "200", "--seed", "3", "--limit", "60", "--output", str(out), "--num-workers", "0")
        assert done.returncode == 0, done.stderr
    results = read_results(out)
    assert len(results) == 2 and {r["model"]["group"] for r in results} == {"tiny-group"}
    for result in results:
        boot = result["bootstrap"]
        assert boot["n"] == 200 and boot["seed"] == 3 and result["seed"] == 3
        assert set(boot["stderr"]) == set(result["metrics"])
        low, high = boot["ci95"]["mean_recall"]
        assert low <= high and boot["stderr"]["mean_recall"] > 0
        assert result["dataset"]["n_images"] == 60
    # the table printed by the (last) run shows the interval of its main score
    row = next(line for line in done.stdout.splitlines() if "| shapes-captions " in line)
    printed = {f"[{100 * r['bootstrap']['ci95']['mean_recall'][0]:.2f}, {100 * r['bootstrap']['ci95']['mean_recall'][1]:.2f}]"
               for r in results}
    assert "main 95% CI" in done.stdout and any(interval in row for interval in printed), row
