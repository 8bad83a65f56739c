"""Paper tables, published reference rows and plots.

The three paper layouts are regenerated from SYNTHETIC result files whose metrics are the published numbers
(CAPIVARA: three checkpoints per group whose mean and std round to the published "mean ± std") and compared cell
by cell with the published tables built here, independently, from /work/shared/data/reference."""

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from benchmark.report.columns import STD_DDOF
from benchmark.errors import ClipbenchError
from benchmark.report.plot import bar_chart_size, heatmap_size, plot
from benchmark.report.reference import load as load_reference
from benchmark.report.render import render
from benchmark.results import Result
from benchmark.report.table import build_table
from benchmark.tasks import suite_registry, task_registry
from helpers import clipbench_here as clipbench

SHARED = Path("/work/shared/data/reference")
needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason="shared/data/reference is not available here")
TASKS = task_registry()
ELEVATER = suite_registry().get("elevater").tasks


# ------------------------------------------------------------------------------------------ synthetic results

def result(group, task, language, metrics, checkpoint=None, seed=None, fingerprint=None, prompts_sha=None, bootstrap=None,
           protocol=None):
    """A result record in the shape of benchmark.run.make_result (schema_version 1); values are fractions.
    Without `protocol`, a result written before protocols existed (read as clipbench's)."""
    spec = TASKS.get(task)
    name = checkpoint or group
    return Result.model_validate({**({"protocol": {"name": protocol, "settings": {}}} if protocol else {}),
        "schema_version": 1, "task": task, "kind": spec.kind, "language": language, "split": spec.split,
        "main_score": spec.main_score, "metrics": dict(metrics), "seed": seed, "bootstrap": bootstrap, "limit": None,
        "model": {"name": name, "group": group, "checkpoint_name": checkpoint, "backend": "open_clip"},
        "dataset": {"format": spec.dataset.format, "location": f"/data/{task}", "fingerprint": fingerprint or f"fp-{task}",
                    "n_images": 10, "n_texts": 50, "n_classes": spec.num_classes, "task_file": spec.source_file},
        "prompts": None if spec.kind != "classification" else
        {"origin": "test", "sha256": prompts_sha or f"sha-{task}-{language}", "n_templates": 1},
        "run": {"clipbench_version": "test", "git_commit": None, "device": "cpu", "precision": "fp32", "batch_size": 1,
                "num_workers": 0, "versions": {}, "started_at": "2024-01-01T00:00:00+00:00", "wall_seconds": 0.1,
                "image_seconds": 0.1, "images_per_second": None, "image_embeddings_reused": False},
    })


def checkpoint_values(mean_pct, std_pct, n=3):
    """n fractions whose mean is mean_pct/100 and whose std (ddof=STD_DDOF, as the tables use) is std_pct/100."""
    if n == 1:
        return [mean_pct / 100]
    pattern = np.linspace(-1, 1, n)
    pattern = pattern / pattern.std(ddof=STD_DDOF)
    return [(mean_pct + std_pct * p) / 100 for p in pattern]


def write(folder: Path, results) -> Path:
    for i, r in enumerate(results):
        r.write(folder / f"{i:04d}.json")
    return folder


def shared(name):
    return json.loads((SHARED / f"{name}.json").read_text())


def cell(raw, decimals=2):
    """A published cell as the paper prints it: "79.56 ± 0.01" for [mean, std], "76.23" for a single number."""
    if isinstance(raw, list):
        return f"{raw[0]:.{decimals}f} ± {raw[1]:.{decimals}f}"
    return f"{raw:.{decimals}f}"


# ----------------------------------------------------------------------------- CAPIVARA: runs and expectations

CAPIVARA_RETRIEVAL = {"flickr30k-pt": ("Flickr30k", "flickr30k-val"), "mscoco-pt": ("MS COCO", "mscoco"),
                      "pracegover": ("PraCegoVer", "pracegover")}
DIRECTIONS = {"t2i": "text-to-image", "i2t": "image-to-text"}


def capivara_retrieval_runs(ref):
    out = []
    for model, datasets in ref["retrieval_mean_recall"].items():
        n = 3 if model == "capivara" else 1
        for key, directions in datasets.items():
            task = CAPIVARA_RETRIEVAL[key][1]
            per_direction = {d: checkpoint_values(*(v if isinstance(v, list) else (v, 0.0)), n=n) for d, v in directions.items()}
            for k in range(n):
                t2i, i2t = per_direction["t2i"][k], per_direction["i2t"][k]
                metrics = {"t2i_mean_recall": t2i, "i2t_mean_recall": i2t, "mean_recall": (t2i + i2t) / 2}
                out.append(result(model, task, "pt", metrics, checkpoint=f"run{k}" if n > 1 else None, protocol="capivara"))
    return out


def capivara_elevater_runs(ref, tasks_by_label):
    """Per-task values only: the Average column must come out of the suite computation."""
    out = []
    for model, columns in ref["classification_pt"].items():
        n = 3 if model == "capivara" else 1
        for label, raw in columns.items():
            if label == "Average":
                continue
            task = tasks_by_label[label]
            values = checkpoint_values(*(raw if isinstance(raw, list) else (raw, 0.0)), n=n)
            metric = "acc1" if task == "imagenet1k" else TASKS.get(task).main_score
            for k, v in enumerate(values):
                out.append(result(model, task, "pt", {metric: v}, checkpoint=f"run{k}" if n > 1 else None, protocol="capivara"))
    return out


def published_frame(rows, columns, cells):
    import pandas as pd

    return pd.DataFrame(cells, index=pd.Index(rows, name="Model"), columns=pd.MultiIndex.from_tuples(columns, names=["", ""]))


def expected_capivara_retrieval(ref):
    columns = [(CAPIVARA_RETRIEVAL[k][0], DIRECTIONS[d]) for k in ref["retrieval_mean_recall"]["capivara"] for d in DIRECTIONS]
    rows = [ref["models"][m]["label"] for m in ref["retrieval_mean_recall"]]
    cells = [[cell(ref["retrieval_mean_recall"][m][k][d]) for k in CAPIVARA_RETRIEVAL for d in DIRECTIONS]
             for m in ref["retrieval_mean_recall"]]
    return published_frame(rows, columns, cells)


def expected_capivara_elevater(ref):
    labels = list(ref["classification_pt"]["capivara"])
    rows = [ref["models"][m]["label"] for m in ref["classification_pt"]]
    cells = [[cell(ref["classification_pt"][m][label]) for label in labels] for m in ref["classification_pt"]]
    return published_frame(rows, [("", label) for label in labels], cells)


def strip_published(frame):
    frame = frame.copy()
    frame.index = frame.index.str.replace(" (published)", "", regex=False)
    return frame


@needs_shared
@pytest.mark.parametrize("source", ["runs", "reference"])
def test_capivara_retrieval_layout_matches_published(tmp_path, source):
    ref = shared("capivara")
    if source == "runs":
        from benchmark.results import read_all

        table = build_table(read_all([write(tmp_path, capivara_retrieval_runs(ref))]), layout="capivara-retrieval")
    else:
        table = build_table([], layout="capivara-retrieval", reference="capivara")
    got, want = strip_published(table.frame), expected_capivara_retrieval(ref)
    assert list(got.columns) == list(want.columns)
    assert list(got.index) == list(want.index)
    for row in want.index:
        for column in want.columns:
            assert got.loc[row, column] == want.loc[row, column], (source, row, column)
    assert got.loc["CAPIVARA", ("Flickr30k", "text-to-image")] == "79.56 ± 0.01"


@needs_shared
@pytest.mark.parametrize("source", ["runs", "reference"])
def test_capivara_elevater_layout_matches_published(tmp_path, source):
    from benchmark.report.reference import CAPIVARA_ELEVATER

    ref = shared("capivara")
    tasks_by_label = {**CAPIVARA_ELEVATER, "ImageNet-1k": "imagenet1k"}
    assert sorted(CAPIVARA_ELEVATER.values()) == sorted(ELEVATER)  # the 20 columns are the suite's 20 tasks
    if source == "runs":
        runs = capivara_elevater_runs(ref, tasks_by_label)
        table = build_table(runs, layout="capivara-elevater")
    else:
        table = build_table([], layout="capivara-elevater", reference="capivara")
    got, want = strip_published(table.frame), expected_capivara_elevater(ref)
    assert list(got.columns) == list(want.columns)  # CAPIVARA's labels in CAPIVARA's order, then Average, ImageNet-1k
    assert list(got.index) == list(want.index)
    mismatches = [(r, c, got.loc[r, c], want.loc[r, c]) for r in want.index for c in want.columns if got.loc[r, c] != want.loc[r, c]]
    assert mismatches == []
    # the Average came out of the suite computation over 20 tasks × 3 checkpoints (mean ± std of per-run averages)
    assert got.loc["CAPIVARA", ("", "Average")] == "57.51 ± 0.02"
    assert got.loc["OpenCLIP ViT-B/32 XLM-Roberta Base (Baseline)", ("", "Average")] == "56.97"


# ------------------------------------------------------------------------------------------------- AltCLIP

ALTCLIP_TASKS = {"en": ("Flickr30k en", "flickr30k"), "zh": ("Flickr30k zh", "flickr30k-cn")}
ALTCLIP_GROUPS = {"AltCLIP": "altclip"}  # the AltCLIP row is reproduced by clipbench's 'altclip' model
R_AT = {"t2i_R@1": "t2i_recall@1", "t2i_R@5": "t2i_recall@5", "t2i_R@10": "t2i_recall@10",
        "i2t_R@1": "i2t_recall@1", "i2t_R@5": "i2t_recall@5", "i2t_R@10": "i2t_recall@10"}


def altclip_runs(ref):
    """Consistent metrics, as a real run has them: MR = mean of the six recalls. The six are moved (by the same
    amount, under 0.05 points so they still print as published) towards the published MR."""
    out = []
    for lang, models in ref["flickr30k"].items():
        task = ALTCLIP_TASKS[lang][1]
        for model, row in models.items():
            six = np.array([row[k] for k in R_AT])
            shift = float(np.clip(row["MR"] - six.mean(), -0.045, 0.045))
            values = dict(zip(R_AT.values(), (six + shift) / 100))
            t2i, i2t = np.mean(list(values.values())[:3]), np.mean(list(values.values())[3:])
            metrics = {**values, "t2i_mean_recall": t2i, "i2t_mean_recall": i2t, "mean_recall": (t2i + i2t) / 2}
            out.append(result(ALTCLIP_GROUPS.get(model, model), task, lang, metrics, protocol="clip-benchmark"))
    return out


def expected_altclip(ref):
    order = [m for m in ("CLIP", "Taiyi", "Wukong", "R2D2", "CN-CLIP", "AltCLIP", "AltCLIP*")]
    assert set(order) == set(ref["flickr30k"]["en"]) | set(ref["flickr30k"]["zh"])
    columns = [(ALTCLIP_TASKS[lang][0], c) for lang in ("en", "zh") for c in ref["columns"]]
    cells = [[cell(ref["flickr30k"][lang][m][c], 1) if m in ref["flickr30k"][lang] else "–"
              for lang in ("en", "zh") for c in ref["columns"]] for m in order]
    return published_frame(order, columns, cells)


@needs_shared
@pytest.mark.parametrize("source", ["runs", "reference"])
def test_altclip_layout_matches_published(source):
    ref = shared("altclip")
    if source == "runs":
        table = build_table(altclip_runs(ref), layout="altclip-flickr30k")
    else:
        table = build_table([], layout="altclip-flickr30k", reference="altclip")
    got, want = strip_published(table.frame), expected_altclip(ref)
    assert list(got.columns) == list(want.columns)
    assert list(got.index) == list(want.index)
    mismatches = {(r, c): (got.loc[r, c], want.loc[r, c]) for r in want.index for c in want.columns if got.loc[r, c] != want.loc[r, c]}
    if source == "reference":
        assert mismatches == {}
    else:
        # The one published cell no consistent run can print: CLIP zh recalls 0.0 2.4 4.0 2.3 8.1 12.6 average 4.90,
        # and moving each by less than 0.05 (so they still print as published) keeps the mean under 4.95.
        assert mismatches == {("CLIP", ("Flickr30k zh", "MR")): ("4.9", "5.0")}
    assert got.loc["Wukong", ("Flickr30k en", "MR")] == "–"  # missing cells stay, as a dash


# ----------------------------------------------------------------------------------------- table mechanics

def small_runs():
    return [
        result("alpha", "cifar-10", "en", {"acc1": 0.90, "acc5": 0.99}),
        result("beta", "cifar-10", "en", {"acc1": 0.80, "acc5": 0.995}),
        result("alpha", "mnist", "en", {"acc1": 0.50}),
        result("beta", "mnist", "en", {"acc1": 0.50}),
        result("alpha", "flickr30k", "en", {"mean_recall": 0.7, "t2i_recall@1": 0.4}),
    ]


def test_bold_best_in_every_format():
    table = build_table(small_runs())
    assert list(table.frame.index) == ["alpha", "beta"]
    assert list(table.frame.columns) == [("", "cifar-10"), ("", "flickr30k"), ("", "mnist")]
    assert table.best.loc["alpha", ("", "cifar-10")] and not table.best.loc["beta", ("", "cifar-10")]
    assert table.best.loc["alpha", ("", "mnist")] and table.best.loc["beta", ("", "mnist")]  # a tie: both bold
    assert not table.best[("", "flickr30k")].any()  # one value: nothing to beat
    markdown = render(table, "markdown")
    assert "| **90.00** " in markdown and "| 80.00 " in markdown and markdown.count("**50.00**") == 2
    latex = render(table, "latex")
    assert r"\textbf{90.00}" in latex and r"\textbf{80.00}" not in latex
    page = render(table, "html")
    assert "<b>90.00</b>" in page and "<b>80.00</b>" not in page
    assert "**" not in render(table, "csv") and "<b>" not in render(table, "csv")


def test_missing_cells_are_dashes_never_dropped():
    table = build_table(small_runs())
    assert table.frame.loc["beta", ("", "flickr30k")] == "–"
    assert "| –" in render(table, "markdown")
    assert "--" in render(table, "latex").splitlines()[-3]  # beta's row: the dash as a LaTeX en dash
    rows = list(csv.reader(io.StringIO(render(table, "csv"))))
    assert rows[0] == ["Model", "cifar-10", "flickr30k", "mnist"]
    assert rows[2] == ["beta", "80.00", "–", "50.00"]


def test_task_metric_columns_and_languages():
    runs = small_runs() + [result("alpha", "imagenet1k", "pt", {"acc1": 0.4}), result("alpha", "imagenet1k", "en", {"acc1": 0.6})]
    table = build_table(runs)
    assert ("", "imagenet1k/en") in table.frame.columns and ("", "imagenet1k/pt") in table.frame.columns
    assert ("", "cifar-10") in table.frame.columns  # one language: no suffix
    by_metric = build_table(runs, metrics=["acc1", "acc5"])
    assert list(by_metric.frame.columns)[:2] == [("cifar-10", "acc1"), ("cifar-10", "acc5")]
    assert by_metric.frame.loc["beta", ("cifar-10", "acc5")] == "99.50"
    assert by_metric.frame.loc["beta", ("mnist", "acc1")] == "50.00"
    assert ("mnist", "acc5") not in by_metric.frame.columns  # no result has it: not a column
    with pytest.raises(ClipbenchError, match="unknown metric"):
        build_table(runs, metrics=["accuracy"])


def test_plots_choose_the_columns_the_tables_do(tmp_path):
    """One column selection (benchmark.report.columns) for both: a bar chart per table column, a misspelt metric named as
    such (before, plot said that no result had it)."""
    runs = small_runs() + [result("alpha", "imagenet1k", "pt", {"acc1": 0.4}), result("alpha", "imagenet1k", "en", {"acc1": 0.6})]
    expected = {"acc1": {"cifar-10": "en", "imagenet1k/en": "en", "imagenet1k/pt": "pt", "mnist": "en"},
                "acc5": {"cifar-10": "en"}}
    for metric, columns in expected.items():
        assert [task for task, _ in build_table(runs, metrics=[metric]).frame.columns] == list(columns)
        bars = sorted(p.name for p in plot(runs, tmp_path / metric, metric) if p.name != "heatmap.png")
        assert bars == sorted(f"bar_{task.split('/')[0]}_{lang}.png" for task, lang in columns.items())
    with pytest.raises(ClipbenchError, match="unknown metric accuracy; use main or one of"):
        plot(runs, tmp_path / "typo", "accuracy")


def test_checkpoints_average_to_mean_and_std():
    values = [0.7955, 0.7956, 0.7957]
    runs = [result("g", "flickr30k", "en", {"mean_recall": v}, checkpoint=f"c{i}") for i, v in enumerate(values)]
    table = build_table(runs)
    assert table.frame.iloc[0, 0] == f"79.56 ± {100 * np.std(values, ddof=STD_DDOF):.2f}"
    assert table.std.iloc[0, 0] == pytest.approx(np.std(values, ddof=STD_DDOF))
    assert STD_DDOF == 0  # CAPIVARA does not say; numpy's default (see benchmark/columns.py)


def test_suite_average_column():
    complete = [result("full", t, "en", {TASKS.get(t).main_score: 0.01 * (i + 1)}) for i, t in enumerate(ELEVATER)]
    partial = [result("part", t, "en", {TASKS.get(t).main_score: 0.5}) for t in ELEVATER[:-1]]
    table = build_table(complete + partial)
    assert table.frame.columns[-1] == ("", "Average")
    assert table.frame.loc["full", ("", "Average")] == f"{np.mean([i + 1 for i in range(20)]):.2f}"  # 10.50
    assert table.frame.loc["part", ("", "Average")] == "–"
    assert table.frame.loc["part", ("", ELEVATER[-1])] == "–"
    assert ("", "Average") not in build_table(partial).frame.columns  # no row has all 20: no Average column


def test_latex_is_booktabs_with_grouped_headers():
    latex = render(build_table([], layout="altclip-flickr30k", reference="altclip"), "latex")
    lines = latex.splitlines()
    assert lines[0] == r"\begin{tabular}{l" + "r" * 14 + "}"
    assert lines[1] == r"\toprule" and lines[-2] == r"\bottomrule" and lines[-1] == r"\end{tabular}"
    assert r"\midrule" in lines
    assert r"\multicolumn{7}{c}{Flickr30k en} & \multicolumn{7}{c}{Flickr30k zh}" in lines[2]
    assert r"\cmidrule(lr){2-8} \cmidrule(lr){9-15}" == lines[3]
    assert r"t2i\_R@1" in lines[4] and "AltCLIP* (published)" in latex
    assert all(line.count("&") == 14 for line in lines[4:] if "&" in line)  # label and data rows: 15 cells
    assert r"$\pm$" in render(build_table([], layout="capivara-retrieval", reference="capivara"), "latex")


def test_csv_and_html():
    table = build_table([], layout="capivara-retrieval", reference="capivara")
    rows = list(csv.reader(io.StringIO(render(table, "csv"))))
    assert rows[0][:3] == ["Model", "Flickr30k text-to-image", "Flickr30k image-to-text"]
    assert rows[2][:2] == ["CAPIVARA (published)", "79.56 ± 0.01"]
    page = render(table, "html")
    assert page.startswith("<table") and '<th colspan="2" halign="left">MS COCO</th>' in page
    assert "<b>79.56 ± 0.01</b>" in page


def test_fingerprint_or_prompt_mismatch_is_refused_unless_forced():
    runs = [result("g", "cifar-10", "en", {"acc1": 0.9}, checkpoint="a", fingerprint="aaaa"),
            result("g", "cifar-10", "en", {"acc1": 0.8}, checkpoint="b", fingerprint="bbbb")]
    with pytest.raises(ClipbenchError, match="dataset.fingerprint differ.*a: aaaa, b: bbbb.*--force"):
        build_table(runs)
    assert build_table(runs, force=True).frame.iloc[0, 0] == "85.00 ± 5.00"
    runs = [result("g", "cifar-10", "en", {"acc1": 0.9}, checkpoint="a", prompts_sha="x"),
            result("g", "cifar-10", "en", {"acc1": 0.8}, checkpoint="b", prompts_sha="y")]
    with pytest.raises(ClipbenchError, match="prompts.sha256 differ"):
        build_table(runs)
    twice = [result("g", "cifar-10", "en", {"acc1": 0.9})] * 2
    with pytest.raises(ClipbenchError, match="pass each result file once"):
        build_table(twice)


def test_reference_rows_and_delta_columns():
    ref = load_reference("capivara")
    published = {(v.model.key, v.task, v.metric): v for v in ref.values}
    runs = []
    for k, offset in enumerate((-0.0001, 0.0, 0.0001)):
        runs.append(result("capivara", "flickr30k-val", "pt", {"t2i_mean_recall": 0.7906 + offset, "i2t_mean_recall": 0.8995},
                           checkpoint=f"run{k}"))
    runs.append(result("someone-else", "flickr30k-val", "pt", {"t2i_mean_recall": 0.5, "i2t_mean_recall": 0.5}))
    assert published[("capivara", "flickr30k-val", "t2i_mean_recall")].value == 0.7956
    table = build_table(runs, metrics=["t2i_mean_recall", "i2t_mean_recall"], reference="capivara")
    frame = table.frame
    assert list(frame.index) == ["OpenCLIP ViT-B/32 XLM-Roberta Base (Baseline) (published)", "CAPIVARA",
                                 "CAPIVARA (published)", "someone-else"]
    group = "flickr30k-val"
    assert list(frame.columns) == [(group, "t2i_mean_recall"), (group, "Δ t2i_mean_recall"),
                                   (group, "i2t_mean_recall"), (group, "Δ i2t_mean_recall")]
    assert frame.loc["CAPIVARA", (group, "Δ t2i_mean_recall")] == "-0.50"  # ours − published, points
    assert frame.loc["CAPIVARA", (group, "Δ i2t_mean_recall")] == "+0.00"
    assert frame.loc["someone-else", (group, "Δ t2i_mean_recall")] == ""  # nothing published to compare with
    assert table.mean.loc["CAPIVARA", (group, "Δ t2i_mean_recall")] == pytest.approx(-0.005)
    assert not table.best[(group, "Δ t2i_mean_recall")].any()


def test_unknown_layout_and_reference():
    with pytest.raises(ClipbenchError, match="Did you mean: capivara-elevater"):
        build_table([], layout="capivara-elevator")
    with pytest.raises(ClipbenchError, match="Known references: altclip, capivara, openclip"):
        build_table([], reference="capivaraa")
    with pytest.raises(ClipbenchError, match="drop --metric"):
        build_table([], layout="capivara-elevater", metrics=["acc1"])


def test_reference_files_load_and_point_at_real_tasks():
    for name in ("capivara", "altclip", "openclip"):
        ref = load_reference(name)
        assert ref.source and ref.values
        assert all(0 <= v.value <= 1 for v in ref.values)
    capivara = load_reference("capivara")
    assert {v.task for v in capivara.values if v.metric in ("t2i_mean_recall", "i2t_mean_recall")} == {"flickr30k-val", "mscoco", "pracegover"}
    assert [v.suite for v in capivara.values if v.suite] == ["elevater", "elevater"]


# ------------------------------------------------------------------------------------------ command line

@needs_shared
def test_cli_table_and_plot(tmp_path):
    ref = shared("capivara")
    runs = capivara_retrieval_runs(ref) + [
        result("capivara", "flickr30k", "en", {"mean_recall": 0.8, "t2i_mean_recall": 0.7}, protocol="capivara",
               bootstrap={"n": 100, "seed": 0, "stderr": {"mean_recall": 0.01}, "ci95": {"mean_recall": [0.78, 0.82]}})]
    folder = write(tmp_path / "runs", runs)
    out = tmp_path / "table.tex"
    done = clipbench("table", str(folder), "--layout", "capivara-retrieval", "--reference", "capivara",
                     "--format", "latex", "--output", str(out))
    assert done.returncode == 0, done.stderr
    latex = out.read_text()
    assert r"\toprule" in latex and r"CAPIVARA & \textbf{79.56 $\pm$ 0.01}" in latex
    assert r"$\Delta$ text-to-image" in latex and " & +0.00 & " in latex

    bad = write(tmp_path / "bad", [result("g", "mnist", "en", {"acc1": 0.5}, checkpoint="a", fingerprint="x"),
                                  result("g", "mnist", "en", {"acc1": 0.6}, checkpoint="b", fingerprint="y")])
    refused = clipbench("table", str(bad))
    assert refused.returncode == 1 and "--force" in refused.stderr and "Traceback" not in refused.stderr

    # a paper's layout shows results measured under that paper's protocol only
    other = write(tmp_path / "other", [result("capivara", "flickr30k-val", "pt", {"mean_recall": 0.85, "t2i_mean_recall": 0.79, "i2t_mean_recall": 0.9})])
    done = clipbench("table", str(other), "--layout", "capivara-retrieval")
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert "measured under protocol 'capivara'" in done.stderr and "'clipbench'" in done.stderr and "--protocol capivara" in done.stderr
    assert clipbench("table", str(other), "--layout", "capivara-retrieval", "--force").returncode == 0

    plots = tmp_path / "plots"
    done = clipbench("plot", str(folder), "--output", str(plots))
    assert done.returncode == 0, done.stderr
    written = sorted(p.name for p in plots.glob("*.png"))
    assert written == ["bar_flickr30k-val_pt.png", "bar_flickr30k_en.png", "bar_mscoco_pt.png", "bar_pracegover_pt.png",
                       "heatmap.png"]
    assert sorted(done.stdout.split()) == [str(plots / n) for n in written]
    groups = 2  # capivara, openclip-xlmr-b32
    for name in written:
        with Image.open(plots / name) as image:
            assert image.format == "PNG"
            expected = heatmap_size(groups, 4) if name == "heatmap.png" else bar_chart_size(groups)
            assert image.size == expected, name
            assert len(np.unique(np.asarray(image.convert("L")))) > 10  # not blank
