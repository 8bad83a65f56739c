"""CLIP_benchmark interop (issue 12), checked against CLIP_benchmark 1.6.2 itself.

The CLIP_benchmark result JSONs read here are written by its own `clip_benchmark eval` (cli.main, in a
subprocess) with the bundled tiny-shapes model on small local data in its layouts, named as its datasets are
(wds/vtab/cifar10, flickr30k); the CSVs compared with ours are written by its own `clip_benchmark build`.
Two substitutions, both only where this environment needs them: modules its cli imports at the top but the
paths run here never call (`requests`, `pycocoevalcap`: not installed here) are empty stand-ins, so a path that
did call them would fail; and its top-k `accuracy()`, which raises under numpy 2.4 (float() of a 1-element
array), is replaced by the same computation with `.item()`, only when the original raises.
"""

import csv
import io
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from benchmark import interop
from benchmark.kinds import METRICS_BY_KIND
from benchmark.metrics import RECALL_KS
from benchmark.results import Result, read_all
from benchmark.tasks import task_registry
from helpers import clipbench_here as clipbench, write_wds

MODEL = f"local-dir:{Path(__file__).resolve().parents[1] / 'benchmark' / 'weights' / 'tiny-shapes'}"
CB_KEYS = ["dataset", "model", "pretrained", "task", "metrics", "language"]  # cli.run()'s dump, in its order

DRIVER = r'''
import importlib.util, json, sys, types
for name in ("requests", "pycocoevalcap", "pycocoevalcap.tokenizer", "pycocoevalcap.tokenizer.ptbtokenizer",
             "pycocoevalcap.bleu", "pycocoevalcap.bleu.bleu", "pycocoevalcap.meteor", "pycocoevalcap.meteor.meteor",
             "pycocoevalcap.rouge", "pycocoevalcap.rouge.rouge", "pycocoevalcap.cider", "pycocoevalcap.cider.cider",
             "pycocoevalcap.spice", "pycocoevalcap.spice.spice"):
    top = name.split(".")[0]
    if top in sys.modules and not getattr(sys.modules[top], "_stand_in", False):
        continue
    if top not in sys.modules and importlib.util.find_spec(top) is not None:
        continue
    module = types.ModuleType(name)
    module._stand_in = True
    module.PTBTokenizer = module.Bleu = module.Meteor = module.Rouge = module.Cider = module.Spice = None
    sys.modules[name] = module

import torch
from clip_benchmark.metrics import zeroshot_classification as zc
try:
    zc.accuracy(torch.eye(6), torch.arange(6), topk=(1, 5))
except TypeError:
    def accuracy(output, target, topk=(1,)):  # its code, with .item() for float() of a 1-element array
        pred = output.topk(max(topk), 1, True, True)[1].t()
        correct = pred.eq(target.view(1, -1).expand_as(pred))
        n = len(target)
        return [float(correct[:k].reshape(-1).float().sum(0, keepdim=True).cpu().numpy().item()) / n for k in topk]
    zc.accuracy = accuracy

from clip_benchmark import cli
for argv in json.loads(sys.argv[1]):
    sys.argv = ["clip_benchmark", *argv]
    cli.main()
'''


def clip_benchmark(*commands: list[str]) -> None:
    """Run `clip_benchmark` commands (eval, build) in one subprocess, as its console script would."""
    done = subprocess.run([sys.executable, "-c", DRIVER, json.dumps(list(commands))], capture_output=True, text=True,
                          timeout=900, env={**__import__("os").environ, "HF_HUB_OFFLINE": "1"})
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.fixture(scope="module")
def cb_results(tmp_path_factory):
    """A folder of CLIP_benchmark result JSONs, as `clip_benchmark eval` wrote them."""
    from benchmark.data import shapes

    root = tmp_path_factory.mktemp("cb")
    classes = root / "data" / "classes"
    write_wds(classes, [{"image": img, "cls": label} for img, label in shapes.classification_samples(30, seed=5)],
              classnames=shapes.class_names("en"), templates=["a photo of a {c}.", "a drawing of a {c}."])
    samples = list(shapes.caption_samples(20, seed=7))
    captions = root / "data" / "captions"
    write_wds(captions, [{"image": img, "txt": caps["en"]} for img, caps in samples], dataset_type="retrieval")
    flickr = root / "data" / "flickr30k"  # its Flickr layout: images and flickr30k_test_karpathy.txt
    flickr.mkdir()
    lines = ["image,caption"]
    for i, (image, caps) in enumerate(samples):
        image.save(flickr / f"{i:04d}.jpg")
        lines += [f"{i:04d}.jpg,{caption}" for caption in caps["en"]]
    (flickr / "flickr30k_test_karpathy.txt").write_text("\n".join(lines) + "\n")
    out = root / "results"
    out.mkdir()
    common = ["--model", MODEL, "--pretrained", "", "--num_workers", "0", "--quiet", "--no_amp",
              "--output", str(out / "{dataset}_{language}_{task}.json")]
    clip_benchmark(
        ["eval", "--dataset", "wds/vtab/cifar10", "--dataset_root", str(classes), *common],
        ["eval", "--dataset", "wds/vtab/cifar10", "--dataset_root", str(classes), "--language", "cn", *common],
        ["eval", "--dataset", "flickr30k", "--dataset_root", str(flickr), "--recall_k", "1", "5", "10", *common],
        ["eval", "--dataset", "wds/captions", "--dataset_root", str(captions), "--task", "zeroshot_retrieval", *common],
    )
    files = {path.name: path for path in out.glob("*.json")}
    assert sorted(files) == [CAPTIONS, FLICKR, CIFAR_CN, CIFAR]
    return out


CIFAR, CIFAR_CN = "vtab_cifar10_en_zeroshot_classification.json", "vtab_cifar10_cn_zeroshot_classification.json"
FLICKR, CAPTIONS = "flickr30k_en_zeroshot_retrieval.json", "captions_en_zeroshot_retrieval.json"


def raw(folder: Path, name: str) -> dict:
    return json.loads((folder / name).read_text())


GOLDEN = Path(__file__).parent / "golden" / "demo"


def clipbench_result(task: str, metrics: dict, group: str = "ours") -> Result:
    """A clipbench result record (schema_version 1) of a registered task, with the given metric values."""
    spec = task_registry().get(task)
    return Result.model_validate({
        "schema_version": 1, "task": task, "kind": spec.kind, "language": "en", "split": spec.split,
        "main_score": spec.main_score, "metrics": metrics, "seed": None, "limit": None,
        "model": {"name": group, "group": group, "backend": "open_clip", "id": "ViT-B-32", "pretrained": "laion2b_s34b_b79k"},
        "dataset": {"format": spec.dataset.format, "fingerprint": f"fp-{task}", "n_images": 10},
        "prompts": None if spec.kind != "classification" else {"origin": "test", "sha256": "sha", "n_templates": 1},
        "protocol": {"name": "clip-benchmark", "settings": {}}})


RECALLS = {"t2i_recall@1": 0.1, "t2i_recall@5": 0.5, "t2i_recall@10": 0.7, "i2t_recall@1": 0.2, "i2t_recall@5": 0.6,
           "i2t_recall@10": 0.8, "t2i_mean_recall": 13 / 30, "i2t_mean_recall": 16 / 30, "mean_recall": 29 / 60}


# ------------------------------------------------------------------------------------------- the name tables

def test_mapped_tasks_exist_with_the_stated_main_score_and_size():
    tasks = task_registry()
    assert interop.RECALL_KS == RECALL_KS
    for names, task, main, languages, why in interop.SAME_DATA:
        spec = tasks.get(task)
        assert spec.main_score == main, task
        assert spec.split in ("test", "val"), task
        stated = int(why.split(", ")[-1].split()[0].replace(",", "")) if why.split(", ")[-1][0].isdigit() else None
        if stated is not None:
            assert spec.expected_images == stated, (task, spec.expected_images, why)
        kind = "retrieval" if languages else "classification"
        assert spec.kind == kind, task
        for name in names:
            assert interop.our_task(name, (languages or ("en",))[0]) == (task, main)
        assert interop.their_dataset(task, (languages or ("en",))[0]) == names[0]
    ours = {m for names in METRICS_BY_KIND.values() for m in names}
    assert set(interop.CLASSIFICATION_METRICS) <= set(METRICS_BY_KIND["classification"])
    for kind in ("classification", "retrieval"):
        assert set(interop.their_metric_order(kind)) <= ours
        assert set(interop.FALLBACK_MAIN[kind]) <= set(METRICS_BY_KIND[kind])
    # retrieval maps English only: CLIP_benchmark's mscoco_captions is English whatever --language says
    assert interop.our_task("mscoco_captions", "pt") == ("cb:mscoco_captions", None)
    assert interop.our_task("sun397", "en") == ("cb:sun397", None)
    # its published webdatasets are `run --task wds/<name>` under the same name, in English only
    assert len(interop.PUBLISHED_WDS) == 41
    assert interop.our_task("wds/vtab/pcam", "en") == ("wds/vtab/pcam", None)
    assert interop.our_task("wds/vtab/pcam", "pt") == ("cb:wds/vtab/pcam", None)
    assert interop.their_dataset("wds/vtab/pcam", "en") == "wds/vtab/pcam"
    assert interop.our_task("wds/mydata", "en") == ("cb:wds/mydata", None)


# -------------------------------------------------------------------------------------------------- reading

def test_clip_benchmark_files_are_read_with_our_names(cb_results):
    results = {Path(r.imported.file).name: r for r in read_all([cb_results])}
    for name, result in results.items():
        written = raw(cb_results, name)
        assert list(written) == CB_KEYS  # what its cli writes, in its order
        assert result.group == f"{written['model']} {written['pretrained']}".strip() + " (imported)"
        assert result.dataset.fingerprint is None and result.prompts is None and result.split is None
        assert result.protocol is None and result.protocol_name == interop.PROTOCOL
        imported = result.imported
        assert (imported.source, imported.dataset, imported.task, imported.model, imported.pretrained, imported.language) == \
            ("CLIP_benchmark", written["dataset"], written["task"], written["model"], written["pretrained"], written["language"])
        for ours, theirs in imported.metrics.items():  # every value is the file's, under our name
            assert result.metrics[ours] == written["metrics"][theirs] or \
                (math.isnan(result.metrics[ours]) and math.isnan(written["metrics"][theirs]))
        assert set(imported.metrics.values()) == set(written["metrics"])

    cifar = results[CIFAR]  # a published webdataset: `clipbench run --task wds/vtab/cifar10` under the same name
    assert (cifar.task, cifar.kind, cifar.language, cifar.main_score) == ("wds/vtab/cifar10", "classification", "en", "acc1")
    assert set(cifar.metrics) == {"acc1", "acc5", "mean_per_class_recall"}
    # its cn is our zh; but a webdataset is read in English whatever --language says: not our task
    chinese = results[CIFAR_CN]
    assert (chinese.task, chinese.language, chinese.imported.language) == ("cb:wds/vtab/cifar10", "zh", "cn")

    flickr = results[FLICKR]
    written = raw(cb_results, FLICKR)["metrics"]
    assert (flickr.task, flickr.main_score) == ("flickr30k", "mean_recall")
    for k in (1, 5, 10):  # image retrieval = a caption finds its image = t2i
        assert flickr.metrics[f"t2i_recall@{k}"] == written[f"image_retrieval_recall@{k}"]
        assert flickr.metrics[f"i2t_recall@{k}"] == written[f"text_retrieval_recall@{k}"]
    t2i = sum(written[f"image_retrieval_recall@{k}"] for k in (1, 5, 10)) / 3
    i2t = sum(written[f"text_retrieval_recall@{k}"] for k in (1, 5, 10)) / 3
    assert flickr.metrics["t2i_mean_recall"] == pytest.approx(t2i, abs=1e-12)
    assert flickr.metrics["mean_recall"] == pytest.approx((t2i + i2t) / 2, abs=1e-12)
    assert flickr.imported.derived == ["t2i_mean_recall", "i2t_mean_recall", "mean_recall"]

    default_k = results[CAPTIONS]  # --recall_k's default: 5 only
    assert (default_k.task, default_k.main_score) == ("cb:wds/captions", "t2i_recall@5")
    assert set(default_k.metrics) == {"t2i_recall@5", "i2t_recall@5"} and not default_k.imported.derived


def test_a_file_from_before_the_language_flag_reads_as_english(cb_results, tmp_path):
    old = raw(cb_results, CIFAR)
    del old["language"]  # the cli's dump before commit 532a99e (2022-11): dataset, model, pretrained, task, metrics
    (tmp_path / "old.json").write_text(json.dumps(old))
    result = Result.from_disk(tmp_path / "old.json")
    assert (result.language, result.imported.language) == ("en", None)


def test_recalls_at_other_k_are_left_out_with_a_note(cb_results, tmp_path):
    data = raw(cb_results, FLICKR)
    data["metrics"]["image_retrieval_recall@50"] = 1.0
    (tmp_path / "k50.json").write_text(json.dumps(data))
    notes = []
    [result] = read_all([tmp_path], note=notes.append)
    assert result.imported.left_out == ["image_retrieval_recall@50"] and not any("50" in m for m in result.metrics)
    assert notes == [f"note: {tmp_path / 'k50.json'}: left out image_retrieval_recall@50: clipbench has recall "
                     "metrics at K = 1, 5, 10 only"]


# ---------------------------------------------------------------------------------- table, compare and plot

def test_table_shows_imported_rows_next_to_clipbench_results(cb_results, tmp_path):
    ours = tmp_path / "ours"
    clipbench_result("flickr30k", RECALLS).write(ours / "flickr30k.en.json")
    done = clipbench("table", str(cb_results), str(ours), str(GOLDEN))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    rows = {cells[0]: dict(zip(header, cells)) for cells in
            ([c.strip() for c in line.strip("|").split("|")] for line in lines[2:] if line.startswith("|"))}
    imported = f"{MODEL} (imported)"
    assert set(rows) == {imported, "ours", "tiny-shapes"}
    flickr = raw(cb_results, FLICKR)["metrics"]
    mean_recall = sum(flickr.values()) / 6  # their six recalls; the mean_recall column, as ours
    assert rows[imported]["flickr30k"].strip("*") == f"{100 * mean_recall:.2f}"
    assert rows["ours"]["flickr30k"].strip("*") == f"{100 * RECALLS['mean_recall']:.2f}"
    acc1 = raw(cb_results, CIFAR)["metrics"]["acc1"]
    assert rows[imported]["wds/vtab/cifar10"].strip("*") == f"{100 * acc1:.2f}"
    assert rows["tiny-shapes"]["flickr30k"] == "–" and rows[imported]["shapes/en"] == "–"
    note = [line for line in lines if line.startswith("(imported): ")]
    assert len(note) == 1 and "4 result(s) read from CLIP_benchmark" in note[0] and "no dataset fingerprint" in note[0]
    as_csv = clipbench("table", str(cb_results), str(ours), "--format", "csv")
    assert as_csv.returncode == 0 and "(imported): " not in as_csv.stdout and as_csv.stderr.startswith("(imported): ")


def test_compare_imported_with_imported_and_refuse_them_against_clipbench(cb_results, tmp_path):
    mixed = tmp_path / "mixed"
    for path in [*cb_results.glob("*.json"), *GOLDEN.rglob("*.json")]:
        target = mixed / path.relative_to(cb_results if path.is_relative_to(cb_results) else GOLDEN)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(path.read_bytes())
    baseline = tmp_path / "baseline.json"
    assert clipbench("baseline", "save", str(mixed), "-o", str(baseline)).returncode == 0
    entries = json.loads(baseline.read_text())["entries"]
    assert {e["group"] for e in entries if e.get("imported") == "CLIP_benchmark"} == {f"{MODEL} (imported)"}
    done = clipbench("compare", str(mixed), "--baseline", str(baseline))
    assert done.returncode == 0 and "**PASS**" in done.stdout, done.stdout + done.stderr
    assert "note: 4 entries imported" in done.stdout and "assumed, not checked" in done.stdout

    dropped = raw(cb_results, CIFAR)
    dropped["metrics"]["acc1"] -= 0.05
    (mixed / CIFAR).write_text(json.dumps(dropped))
    done = clipbench("compare", str(mixed), "--baseline", str(baseline))
    assert done.returncode == 1 and "REGRESSION" in done.stdout

    for run, before in ((cb_results, GOLDEN), (GOLDEN, cb_results)):
        done = clipbench("compare", str(run), "--baseline", str(before))
        assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
        assert done.stderr.startswith("error: ") and "holds only results imported from CLIP_benchmark" in done.stderr
        assert str(cb_results) in done.stderr and "clipbench table" in done.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    done = clipbench("compare", str(empty), "--baseline", str(cb_results))  # nothing to compare: not a provenance clash
    assert done.returncode == 1 and "has none of the 4 entries" in done.stderr, done.stderr


def test_plot_draws_imported_results(cb_results, tmp_path):
    done = clipbench("plot", str(cb_results), "-o", str(tmp_path / "plots"))
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.split()) == 4 + 1 and {"bar_flickr30k_en.png", "heatmap.png"} <= {Path(p).name for p in done.stdout.split()}


# ----------------------------------------------------------------------------------------------- export

def _csv_rows(text: str) -> tuple[list[str], list[dict]]:
    reader = csv.DictReader(io.StringIO(text, newline=""))
    return reader.fieldnames, list(reader)


def test_export_is_what_clip_benchmark_build_reads_and_writes(cb_results, tmp_path):
    out = tmp_path / "export"
    done = clipbench("export", str(GOLDEN), str(cb_results), "--format", "clip-benchmark", "-o", str(out))
    assert done.returncode == 0, done.stderr
    files = sorted(out.glob("*.json"))
    assert len(files) == 4 + 6 and done.stdout.split() == [*map(str, files), str(out / "benchmark.csv")]
    for path in files:
        data = json.loads(path.read_text())
        assert list(data) == CB_KEYS and path.read_text() == json.dumps(data)  # its json.dump(dump, f)
        assert path.name == interop.file_name(data)
    # imported files come back byte for byte (their metrics were in CLIP_benchmark's own order)
    for path in cb_results.glob("*.json"):
        data = json.loads(path.read_text())
        assert (out / interop.file_name(data)).read_bytes() == path.read_bytes()

    theirs = tmp_path / "build.csv"
    clip_benchmark(["build", *map(str, files), "--output", str(theirs)])
    ours_text = (out / "benchmark.csv").read_bytes().decode()
    their_text = theirs.read_bytes().decode()
    our_fields, our_rows = _csv_rows(ours_text)
    their_fields, their_rows = _csv_rows(their_text)
    assert set(our_fields) == set(their_fields) and our_rows == their_rows
    # the same bytes once build's columns (a set's order, which changes between processes) are put in ours
    again = io.StringIO(newline="")
    writer = csv.DictWriter(again, fieldnames=our_fields)
    writer.writeheader()
    writer.writerows(their_rows)
    assert again.getvalue() == ours_text and ours_text.endswith("\r\n")


def test_clipbench_results_round_trip_through_clip_benchmark_files(tmp_path):
    out = tmp_path / "export"
    done = clipbench("export", str(GOLDEN), "--format", "clip-benchmark", "-o", str(out))
    assert done.returncode == 0, done.stderr
    original = sorted(read_all([GOLDEN]), key=lambda r: (r.task, r.language))
    back = sorted(read_all([out]), key=lambda r: (r.task, r.language))
    assert len(back) == len(original) == 6
    for before, after in zip(original, back):
        assert (after.task, after.kind, after.language, after.main_score) == \
            (before.task, before.kind, before.language, before.main_score)
        assert set(after.metrics) == set(before.metrics)
        for name, value in before.metrics.items():
            assert after.metrics[name] == pytest.approx(value, abs=1e-12)
    zh = json.loads(next(out.glob("clipbench_shapes__*_cn_zeroshot_classification.json")).read_text())
    assert (zh["dataset"], zh["language"], zh["task"]) == ("clipbench/shapes", "cn", "zeroshot_classification")


def test_export_of_a_mapped_task_uses_clip_benchmark_names(tmp_path):
    ours = tmp_path / "ours"
    clipbench_result("flickr30k", RECALLS).write(ours / "flickr30k.en.json")
    clipbench_result("voc-2007-classification", {"map_11point": 0.7}).write(ours / "voc.en.json")
    done = clipbench("export", str(ours), "--format", "clip-benchmark", "-o", str(tmp_path / "out"))
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines()[0] == "note: skipped ours on voc-2007-classification [en]: no metric CLIP_benchmark " \
                                          "has a name for (map_11point)"
    [path] = (tmp_path / "out").glob("*.json")
    assert path.name == "flickr30k_laion2b_s34b_b79k_ViT-B-32_en_zeroshot_retrieval.json"
    data = json.loads(path.read_text())
    assert (data["dataset"], data["model"], data["pretrained"]) == ("flickr30k", "ViT-B-32", "laion2b_s34b_b79k")
    assert list(data["metrics"]) == [f"{d}_retrieval_recall@{k}" for k in (1, 5, 10) for d in ("image", "text")]
    assert data["metrics"]["image_retrieval_recall@5"] == 0.5 and data["metrics"]["text_retrieval_recall@10"] == 0.8


# ------------------------------------------------------------------------------------------------ bad input

def _one_error_line(done, code, *needles):
    assert done.returncode == code, (done.returncode, done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in done.stderr, done.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


BROKEN = {
    "unknown metric key": (lambda d: d["metrics"].update(top1_zeroshot_accuracy=0.5),
                           "field 'metrics.top1_zeroshot_accuracy': not a zeroshot_classification metric clipbench reads"),
    "unknown task kind": (lambda d: d.update(task="linear_probe"),
                          "field 'task': 'linear_probe' is a CLIP_benchmark task clipbench does not evaluate"),
    "metrics not an object": (lambda d: d.update(metrics=[0.5]), "field 'metrics': not an object"),
    "metric not a number": (lambda d: d["metrics"].update(acc1="high"), "field 'metrics.acc1': not a number"),
    "no model": (lambda d: d.pop("model"), "field 'model': missing"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_a_broken_clip_benchmark_file_is_one_line_naming_file_and_key(cb_results, tmp_path, case):
    change, needle = BROKEN[case]
    data = raw(cb_results, CIFAR)
    change(data)
    (tmp_path / "bad.json").write_text(json.dumps(data))
    for command in (("table", str(tmp_path)), ("compare", str(tmp_path), "--baseline", str(cb_results)),
                    ("export", str(tmp_path / "bad.json"), "--format", "clip-benchmark", "-o", str(tmp_path / "out"))):
        _one_error_line(clipbench(*command), 2, str(tmp_path / "bad.json"), needle)


def test_truncated_json_and_export_mistakes(cb_results, tmp_path):
    (tmp_path / "cut.json").write_text(json.dumps(raw(cb_results, CIFAR))[:40])
    _one_error_line(clipbench("table", str(tmp_path / "cut.json")), 1, str(tmp_path / "cut.json"), "not readable as JSON")
    _one_error_line(clipbench("export", str(cb_results), "--format", "csv", "-o", str(tmp_path / "o")), 2,
                    "unknown export format 'csv'; use one of clip-benchmark")
    twice = tmp_path / "twice"
    for i in (1, 2):  # two copies of one file would be written to one name
        (twice / str(i)).mkdir(parents=True)
        (twice / str(i) / "r.json").write_bytes((cb_results / CIFAR).read_bytes())
    # read_all refuses nothing here (two folders); export refuses the clash
    _one_error_line(clipbench("export", str(twice / "1"), str(twice / "2"), "--format", "clip-benchmark", "-o",
                              str(tmp_path / "o")), 2, "would both be written to", "export them to separate folders")


def test_a_paper_layout_refuses_imported_results_without_force(cb_results):
    from benchmark.errors import ClipbenchError
    from benchmark.report.table import build_table

    imported = [r for r in read_all([cb_results]) if r.task == "flickr30k"]
    with pytest.raises(ClipbenchError) as refused:
        build_table(imported, layout="altclip-flickr30k")
    assert refused.value.exit_code == 2 and f"'{interop.PROTOCOL}'" in str(refused.value)
    shown = build_table(imported, layout="altclip-flickr30k", force=True)
    assert shown.notes and shown.notes[-1].startswith("(imported): 1 result(s) read from CLIP_benchmark")
