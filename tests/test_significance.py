"""Is B - A real? `run --save-queries`, `compare A B --paired` and `table --significance`.

The test itself is checked on synthetic per-query outcomes with a known answer: when the true difference is zero
it says "significant at 0.05" about 5% of the time (calibration), it detects a real difference as often as the
normal approximation says it should (power), and its interval and p-value equal a straightforward
reimplementation written here. The command line is then run end to end on tiny runs of the bundled model and of
a random one, and on bad inputs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from scipy import integrate, stats

from benchmark.kinds import KINDS, Queries, measure
from benchmark.kinds.stored import queries_file
from benchmark.metrics import RECALL_KS
from benchmark.report.significance import p_value, paired_bootstrap
from benchmark.run import result_file
from helpers import clipbench_here as clipbench, write_tiny_hf_clip
from test_errors import assert_clean_failure

KS = np.array(RECALL_KS)  # retrieval's recall K's: the columns of its per-query "found" matrices

ALPHA = 0.05
CLASSIFICATION, RETRIEVAL = KINDS["classification"], KINDS["retrieval"]


def binomial_band(rate: float, repetitions: int) -> tuple[float, float]:
    """rate ± 3 binomial standard errors: a correct test with a fixed seed falls outside with probability ~0.3%."""
    half = 3 * np.sqrt(rate * (1 - rate) / repetitions)
    return rate - half, rate + half


# -------------------------------------------------------------------------------- synthetic per-query outcomes

def hits(names, top1) -> Queries:
    return Queries(tuple(CLASSIFICATION.metric(n) for n in names), {"images": len(top1)}, {"top1": ("images", top1)})


def ranks(t2i, i2t, names=("mean_recall",)) -> Queries:
    return Queries(tuple(RETRIEVAL.metric(n) for n in names), {"texts": len(t2i), "images": len(i2t)},
                   {"t2i_found": ("texts", t2i[:, None] < KS), "i2t_found": ("images", i2t[:, None] < KS)})


def paired_hits(rng, n, shift=0.0):
    """Two models on the same n queries: query i is easy or hard for both (success probability p_i ~ Beta(2, 1));
    B's is p_i + shift (capped at 1). Given p_i the two outcomes are independent."""
    p = rng.beta(2, 1, n)
    return rng.random(n) < p, rng.random(n) < np.minimum(p + shift, 1.0)


def paired_ranks(rng, n):
    """Ranks (0..10, 10 = not in the top 10) of two equally good models on the same queries: each query has its own
    difficulty, shared by both models."""
    difficulty = rng.uniform(0.15, 0.9, n)
    return np.minimum(rng.geometric(difficulty) - 1, 10), np.minimum(rng.geometric(difficulty) - 1, 10)


def test_null_false_positive_rate_is_alpha():
    """1000 pairs of equally good models on 1000 queries (true difference 0; per query the two are correlated
    through p_i): the paired test says p < 0.05 for 5% of them, within 3 binomial standard errors ([2.9%, 7.1%]).
    A one-sided p (~10%) or a test that resampled A and B independently (far below 5%: the shared query
    difficulty inflates its variance) falls outside. 1000 queries, not fewer: like every percentile bootstrap the
    test is slightly liberal on small samples (a vectorised rerun of this setup over 4000 pairs measured 5.5%
    false positives at 300 queries, 4.75% at 1000, where the z-test of the same pairs gave 5.15% and 4.5%)."""
    rng, repetitions = np.random.default_rng(12), 1000
    rejected = 0
    for r in range(repetitions):
        a, b = paired_hits(rng, 1000)
        rejected += paired_bootstrap(hits(["acc1"], a), hits(["acc1"], b), draws=400, seed=r)["acc1"].p < ALPHA
    low, high = binomial_band(ALPHA, repetitions)
    assert low <= rejected / repetitions <= high, rejected / repetitions


def test_null_false_positive_rate_of_a_metric_over_two_query_sets():
    """mean_recall is not a mean over one query set: captions and images are resampled on their own and the metric
    recomputed. 600 pairs of equally good models (400 captions, 150 images): 5% false positives within 3 binomial
    standard errors ([2.3%, 7.7%]; a vectorised rerun over 4000 pairs measured 5.4%)."""
    rng, repetitions = np.random.default_rng(34), 600
    rejected = 0
    for r in range(repetitions):
        (t2i_a, t2i_b), (i2t_a, i2t_b) = paired_ranks(rng, 400), paired_ranks(rng, 150)
        rejected += paired_bootstrap(ranks(t2i_a, i2t_a), ranks(t2i_b, i2t_b), draws=300, seed=r)["mean_recall"].p < ALPHA
    low, high = binomial_band(ALPHA, repetitions)
    assert low <= rejected / repetitions <= high, rejected / repetitions


def test_power_matches_the_normal_approximation():
    """B is better by about 7.4 points (p_i + 0.08) on 400 queries. The paired difference D = B_i - A_i has the
    mean and variance integrated here from the model; a two-sided level-0.05 test detects the difference with
    probability Phi(mu/se - 1.96) + Phi(-mu/se - 1.96) (about 0.76). Over 300 such pairs the paired bootstrap
    detects it that often, within 3 binomial standard errors, and far more often than the 5% of the null."""
    n, shift, repetitions = 400, 0.08, 300
    density = stats.beta(2, 1).pdf
    mean = integrate.quad(lambda p: (min(p + shift, 1) - p) * density(p), 0, 1)[0]
    differ = integrate.quad(lambda p: (p * (1 - min(p + shift, 1)) + min(p + shift, 1) * (1 - p)) * density(p), 0, 1)[0]
    se, z = np.sqrt((differ - mean ** 2) / n), stats.norm.ppf(1 - ALPHA / 2)
    expected = stats.norm.cdf(mean / se - z) + stats.norm.cdf(-mean / se - z)
    rng = np.random.default_rng(56)
    detected = 0
    for r in range(repetitions):
        a, b = paired_hits(rng, n, shift)
        found = paired_bootstrap(hits(["acc1"], a), hits(["acc1"], b), draws=500, seed=r)["acc1"]
        detected += found.p < ALPHA and found.delta > 0
    low, high = binomial_band(expected, repetitions)
    assert 0.5 < expected and low <= detected / repetitions <= high, (detected / repetitions, expected)


def test_pairing_detects_a_small_consistent_gain():
    """B = A plus 8 more correct queries out of 400 (+2 points) and nothing worse: every resample of the same queries
    keeps B ahead, so p is below the resolution. Resampled independently, the two 95% intervals would overlap
    almost entirely; a test that did not pair the draws would not see it."""
    rng = np.random.default_rng(7)
    a = rng.random(400) < 0.6
    b = a.copy()
    b[np.flatnonzero(~a)[:8]] = True
    found = paired_bootstrap(hits(["acc1"], a), hits(["acc1"], b), draws=1000, seed=0)["acc1"]
    assert found.delta == pytest.approx(0.02) and found.p == 0 and found.ci95[0] > 0


def test_identical_models_give_p_1():
    a = np.random.default_rng(1).random(50) < 0.5
    found = paired_bootstrap(hits(["acc1"], a), hits(["acc1"], a.copy()), draws=200, seed=0)["acc1"]
    assert found.delta == 0 and found.ci95 == (0.0, 0.0) and found.p == 1.0


def test_p_value_rule():
    """Twice the share on the far side of zero, a draw at zero counting half to each side, capped at 1."""
    assert p_value(np.array([1.0, 2.0, 3.0, 4.0])) == 0.0
    assert p_value(np.array([-1.0, 2.0, 3.0, 4.0])) == 0.5
    assert p_value(np.array([0.0, 2.0, 3.0, 4.0])) == 0.25
    assert p_value(np.array([-1.0, 1.0])) == 1.0 and p_value(np.zeros(5)) == 1.0
    assert p_value(np.array([-3.0, -2.0, -1.0, 1.0])) == 0.5  # symmetric in the sign
    assert np.isnan(p_value(np.array([np.nan, 1.0])))


def reference_paired(metric, columns_a, columns_b, sizes, draws, seed):
    """The paired bootstrap written out: draw each query set (in the kind's order), index both models' columns with
    the same draws, recompute the metric, keep B - A; percentile interval; p as in the module docstring."""
    rng = np.random.default_rng(seed)
    deltas = []
    for _ in range(draws):
        drawn = {name: rng.integers(0, n, n) for name, n in sizes.items()}
        deltas.append(metric({k: v[drawn[s]] for k, (s, v) in columns_b.items()})
                      - metric({k: v[drawn[s]] for k, (s, v) in columns_a.items()}))
    deltas = np.array(deltas)
    p = 2 * min(np.mean(deltas < 0) + np.mean(deltas == 0) / 2, np.mean(deltas > 0) + np.mean(deltas == 0) / 2)
    return tuple(np.percentile(deltas, [2.5, 97.5])), min(1.0, p)


def mean_recall_by_hand(c):
    """The columns hold, per query, whether its first correct item was found within each K (1, 5, 10)."""
    return np.mean([np.mean(c["t2i_found"][:, j]) for j in range(3)] + [np.mean(c["i2t_found"][:, j]) for j in range(3)])


def balanced_accuracy_by_hand(c):
    """ELEVATER: the argmax among the classes that have an image in this sample, then the mean recall per class."""
    present = np.unique(c["labels"])
    predicted = present[np.argmax(c["logits"][:, present], axis=1)]
    return np.mean([np.mean(predicted[c["labels"] == k] == k) for k in present])


def test_interval_and_p_equal_a_straightforward_reimplementation():
    import torch

    rng = np.random.default_rng(3)
    cases = []
    # retrieval (two query sets, texts drawn before images): scores as the retrieval kind holds them
    sizes = {"texts": 90, "images": 30}
    scored = [{"t2i": torch.as_tensor(rng.integers(0, 11, 90)), "i2t": torch.as_tensor(rng.integers(0, 11, 30))}
              for _ in range(2)]
    cases.append((RETRIEVAL, scored, "mean_recall", mean_recall_by_hand, sizes))
    # classification: balanced accuracy over 12 classes (some absent from some resamples), from the real logits
    labels = torch.as_tensor(rng.integers(0, 12, 80))
    scored = [{"logits": torch.as_tensor(rng.normal(size=(80, 12)), dtype=torch.float32) + 2 * torch.nn.functional.one_hot(labels, 12) * w,
               "labels": labels} for w in (0.5, 0.8)]
    cases.append((CLASSIFICATION, scored, "mean_per_class_recall", balanced_accuracy_by_hand, {"images": 80}))
    for kind, (scores_a, scores_b), name, by_hand, sizes in cases:
        a, b = measure(kind, scores_a, [name]), measure(kind, scores_b, [name])
        found = paired_bootstrap(a, b, draws=300, seed=11)[name]
        ci, p = reference_paired(by_hand, a.columns, b.columns, sizes, 300, 11)
        assert found.a == pytest.approx(by_hand({k: v for k, (_, v) in a.columns.items()}), abs=1e-12)
        assert found.ci95 == pytest.approx(ci, abs=1e-12) and found.p == pytest.approx(p, abs=1e-12)
        assert 0 < found.p < 1 and found.ci95[0] < found.ci95[1]  # a case where the comparison means something


def test_the_seed_decides_the_draws():
    rng = np.random.default_rng(5)
    a, b = paired_hits(rng, 200)
    first = paired_bootstrap(hits(["acc1"], a), hits(["acc1"], b), draws=300, seed=1)["acc1"]
    assert first == paired_bootstrap(hits(["acc1"], a), hits(["acc1"], b), draws=300, seed=1)["acc1"]
    assert first.ci95 != paired_bootstrap(hits(["acc1"], a), hits(["acc1"], b), draws=300, seed=2)["acc1"].ci95


# ------------------------------------------------------------------------------------------------ end to end

TASKS = ("--task", "shapes", "--task", "shapes-captions", "--language", "en", "--limit", "120", "--num-workers", "0")


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    """a: the bundled model; random: a random model; both run with --save-queries on the same 120-image subsets of
    shapes and shapes-captions. same: a's files with the group renamed (the bundled model again, as another row)."""
    root = tmp_path_factory.mktemp("runs")
    model = write_tiny_hf_clip(root / "random-model")
    for folder, model_args in (("a", ("--model", "tiny-shapes")), ("random", ("--model", f"hf:{model}", "--group", "random"))):
        done = clipbench("run", *model_args, *TASKS, "--output", str(root / folder), "--save-queries")
        assert done.returncode == 0, done.stderr
    edit_results(copy_run(root / "a", root / "same"), lambda result: result["model"].update(group="same"))
    return root


def copy_run(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    return target


def edit_results(folder: Path, change) -> Path:
    for path in folder.rglob("*.json"):
        result = json.loads(path.read_text())
        change(result)
        path.write_text(json.dumps(result))
    return folder


def one(folder: Path, task: str) -> Path:
    [path] = [p for p in folder.rglob(f"{task}.en.*.json")]
    return path


def table_rows(text: str) -> dict[tuple[str, str], list[str]]:
    rows = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) > 5 and cells[0] not in ("task", "") and not set(cells[0]) <= {"-"}:
            rows[(cells[0], cells[2])] = cells
    return rows


def test_save_queries_writes_the_columns_beside_the_result(runs):
    path = one(runs / "a", "shapes")
    result = json.loads(path.read_text())
    stored = queries_file(path)
    assert result["run"]["queries"] == stored.name and stored.is_file()
    with np.load(stored, allow_pickle=False) as archive:
        meta = json.loads(str(archive["__meta__"]))
        top1, top5 = archive["top1"], archive["top5"]
    assert meta["fingerprint"] == result["dataset"]["fingerprint"] and meta["sizes"] == {"images": 120}
    assert top1.mean() == result["metrics"]["acc1"] and top5.mean() == result["metrics"]["acc5"]
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]  # no staged file left behind


def test_compare_paired_same_model_is_not_significant(runs):
    done = clipbench("compare", str(runs / "a"), str(runs / "same"), "--paired")
    assert done.returncode == 0, done.stderr
    rows = table_rows(done.stdout)
    assert set(rows) == {("shapes", "acc1"), ("shapes-captions", "mean_recall")}
    for cells in rows.values():
        assert cells[3] == cells[4] and cells[5:] == ["+0.00", "[+0.00, +0.00]", "1.000", "no"]
    assert "1000 draws, seed 0" in done.stdout


def test_compare_paired_against_a_random_model(runs):
    done = clipbench("compare", str(runs / "a"), str(runs / "random"), "--paired", "--seed", "4", "--draws", "400")
    assert done.returncode == 0, done.stderr  # a report, not a gate
    rows = table_rows(done.stdout)
    a, b = json.loads(one(runs / "a", "shapes").read_text()), json.loads(one(runs / "random", "shapes").read_text())
    cells = rows[("shapes", "acc1")]
    assert cells[3] == f"{100 * a['metrics']['acc1']:.2f}" and cells[4] == f"{100 * b['metrics']['acc1']:.2f}"
    assert cells[5] == f"{100 * (b['metrics']['acc1'] - a['metrics']['acc1']):+.2f}"
    columns = {}
    for side in ("a", "random"):
        with np.load(queries_file(one(runs / side, "shapes")), allow_pickle=False) as archive:
            columns[side] = {"top1": ("images", archive["top1"])}
    ci, p = reference_paired(lambda c: np.mean(c["top1"]), columns["a"], columns["random"], {"images": 120}, 400, 4)
    assert cells[6] == f"[{100 * ci[0]:+.2f}, {100 * ci[1]:+.2f}]"
    assert cells[8] == ("yes" if p < ALPHA else "no") == "yes"  # a random model is not as good as the trained one
    assert "400 draws, seed 4" in done.stdout
    assert rows[("shapes-captions", "mean_recall")][8] == "yes"


def test_compare_paired_other_metrics(runs):
    done = clipbench("compare", str(runs / "a"), str(runs / "random"), "--paired", "--metric", "acc5",
                     "--metric", "mean_per_class_recall", "--metric", "i2t_recall@1")
    assert done.returncode == 0, done.stderr
    assert set(table_rows(done.stdout)) == {("shapes", "acc5"), ("shapes", "mean_per_class_recall"),
                                            ("shapes-captions", "i2t_recall@1")}


def test_table_significance_marks_the_cells_that_differ(runs):
    done = clipbench("table", str(runs / "a"), str(runs / "same"), str(runs / "random"), "--significance", "tiny-shapes")
    assert done.returncode == 0, done.stderr
    lines = {line.split("|")[1].strip(): line for line in done.stdout.splitlines() if line.startswith("| ")}
    assert lines["random"].count("†") == 2 and "†" not in lines["same"] and "†" not in lines["tiny-shapes"]
    assert done.stdout.rstrip().endswith("† differs from tiny-shapes at p < 0.05 (paired bootstrap, 1000 draws, seed 0)")
    plain = clipbench("table", str(runs / "a"), str(runs / "same"), str(runs / "random"))
    assert plain.returncode == 0 and "†" not in plain.stdout
    def cells(text):
        return [[c.strip() for c in line.split("|")] for line in text.strip().splitlines() if line.startswith("| ")]
    assert cells(plain.stdout) == cells(done.stdout.replace("†", ""))  # the same table, with the marks


# ------------------------------------------------------------------------------------------------ bad inputs



def test_mismatched_fingerprints_are_refused(runs, tmp_path):
    other = copy_run(runs / "random", tmp_path / "other")
    path = one(other, "shapes")
    result = json.loads(path.read_text())
    result["dataset"]["fingerprint"] = "0" * 64
    path.write_text(json.dumps(result))
    done = clipbench("compare", str(runs / "a"), str(other), "--paired")
    assert_clean_failure(done, 2, "cannot pair", str(one(runs / "a", "shapes")), str(path), "dataset.fingerprint differ")


def test_a_missing_queries_file_is_named(runs, tmp_path):
    other = copy_run(runs / "random", tmp_path / "other")
    queries_file(one(other, "shapes")).unlink()
    done = clipbench("compare", str(runs / "a"), str(other), "--paired")
    assert_clean_failure(done, 2, str(queries_file(one(other, "shapes"))), "missing", "rerun with --save-queries")
    done = clipbench("table", str(runs / "a"), str(other), "--significance", "tiny-shapes")
    assert_clean_failure(done, 2, str(queries_file(one(other, "shapes"))), "rerun with --save-queries")


def test_a_result_run_without_save_queries_is_named(runs, tmp_path):
    """What a run without the flag writes: no run.queries (test_predictions checks the same of its own flag)."""
    out = edit_results(copy_run(runs / "random", tmp_path / "plain"), lambda result: result["run"].pop("queries"))
    for stored in out.rglob("*.queries.npz"):
        stored.unlink()
    done = clipbench("compare", str(runs / "a"), str(out), "--paired")
    assert_clean_failure(done, 2, str(one(out, "shapes")), "no per-query outcomes", "rerun with --save-queries")


def test_queries_of_another_run_are_refused(runs, tmp_path):
    other = copy_run(runs / "random", tmp_path / "other")
    shutil.copyfile(queries_file(one(runs / "a", "shapes")), queries_file(one(other, "shapes")))
    done = clipbench("compare", str(runs / "a"), str(other), "--paired")
    assert_clean_failure(done, 2, str(queries_file(one(other, "shapes"))), "another run", "rerun with --save-queries")


def test_a_group_of_several_checkpoints_is_refused_by_table_significance(runs, tmp_path):
    for checkpoint in ("s1", "s2"):
        edit_results(copy_run(runs / "random", tmp_path / checkpoint),
                     lambda result: result["model"].update(group="pooled", checkpoint_name=checkpoint))
    done = clipbench("table", str(runs / "a"), str(tmp_path / "s1"), str(tmp_path / "s2"), "--significance", "tiny-shapes")
    assert_clean_failure(done, 2, "group 'pooled' has 2", "one checkpoint per group")


@pytest.mark.parametrize("args, needles", [
    (("--paired",), ("takes two results",)),
    (("--paired", "--baseline", "x.json"), ("--baseline", "not --paired")),
    (("--paired", "--draws", "5"), ("--draws needs at least 100",)),
    (("--paired", "--alpha", "1.5"), ("--alpha must be between 0 and 1",)),
    (("--seed", "3"), ("--seed", "add --paired")),
    ((), ("compare needs --baseline",)),
])
def test_bad_compare_options(runs, args, needles):
    paths = [str(runs / "a")] + ([str(runs / "same")] if "takes two results" not in needles else [])
    done = clipbench("compare", *paths, *args)
    assert_clean_failure(done, 2, *needles)


def test_a_blocked_queries_path_fails_before_the_model_loads(tmp_path):
    (tmp_path / "empty").mkdir()
    models = tmp_path / "models.toml"
    models.write_text(f'[[model]]\nname = "never-loads"\nbackend = "transformers"\nid = "{tmp_path / "empty"}"\nlanguages = ["en"]\n')
    out = tmp_path / "out"
    blocked = queries_file(result_file(out, "never-loads", None, "shapes", None, None, "en", 4, 0))
    blocked.mkdir(parents=True)  # a folder where the queries file would go
    done = clipbench("run", "--model", "never-loads", "--task", "shapes", "--limit", "4", "--output", str(out),
                     "--save-queries", env={"CLIPBENCH_MODELS": str(models)})
    assert_clean_failure(done, 1, str(blocked), "is a folder", out=out)
    assert "could not load" not in done.stderr


def test_a_failed_result_write_keeps_the_earlier_queries_file(tmp_path, monkeypatch):
    """The result write fails after the queries are staged: the earlier result and queries file stay, nothing is
    left over; once it succeeds the file holds the new columns and the result names it."""
    import torch

    from benchmark.errors import ClipbenchError
    from benchmark.kinds import Outcome
    from benchmark.results import DatasetInfo, Result, RunInfo
    from benchmark.run import RunOptions, write_outcome_and_queries
    from benchmark.tasks import task_registry

    path = tmp_path / "shapes.en.json"
    path.write_text("earlier result\n")
    queries_file(path).write_bytes(b"earlier queries")
    scores = {"logits": torch.tensor([[1.0, 2.0], [3.0, 1.0], [0.0, 1.0]]), "labels": torch.tensor([1, 1, 1])}
    outcome = Outcome(3, 0, queries=measure(CLASSIFICATION, scores, ["acc1"]))

    def result():
        return Result.model_construct(task="shapes", kind="classification", language="en", variant=None,
                                      dataset=DatasetInfo(fingerprint="f", n_images=3), run=RunInfo())

    def full_disk(self, where):
        raise ClipbenchError(f"cannot write {where} (No space left on device); nothing was changed there")

    monkeypatch.setattr(Result, "write", full_disk)
    options = RunOptions(save_queries=True)
    with pytest.raises(ClipbenchError, match="No space left"):
        write_outcome_and_queries(result(), path, task_registry().get("shapes"), outcome, options)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shapes.en.json", "shapes.en.queries.npz"]
    assert path.read_text() == "earlier result\n" and queries_file(path).read_bytes() == b"earlier queries"

    monkeypatch.undo()
    written = result()
    write_outcome_and_queries(written, path, task_registry().get("shapes"), outcome, options)
    assert written.run.queries == "shapes.en.queries.npz" and json.loads(path.read_text())["run"]["queries"] == written.run.queries
    with np.load(queries_file(path), allow_pickle=False) as archive:
        assert archive["top1"].tolist() == [True, False, True]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shapes.en.json", "shapes.en.queries.npz"]
