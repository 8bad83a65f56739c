"""Regression tracking: `clipbench baseline save` and `clipbench compare`."""

import json

import pytest

from benchmark.results import write_atomic
from helpers import clipbench_here as clipbench


def result(task, language, value, group="m", main="acc1", checkpoint=None, ci=None):
    return {
        "schema_version": 1, "task": task, "kind": "classification", "language": language, "split": "test",
        "main_score": main, "metrics": {main: value}, "seed": None,
        "bootstrap": {"n": 100, "seed": 0, "stderr": {main: 0.01}, "ci95": {main: ci}} if ci else None,
        "model": {"name": group, "group": group, "checkpoint_name": checkpoint},
        "dataset": {"fingerprint": "f", "n_images": 10}, "prompts": {"sha256": "p"}, "run": {},
    }


def write(folder, results):
    for index, item in enumerate(results):
        write_atomic(folder / f"{index}.json", item)
    return folder


@pytest.fixture
def baseline(tmp_path):
    runs = write(tmp_path / "base", [result("shapes", "en", 0.90), result("shapes", "pt", 0.80, ci=[0.75, 0.85])])
    path = tmp_path / "baseline.json"
    done = clipbench("baseline", "save", str(runs), "--output", str(path))
    assert done.returncode == 0, done.stderr
    entries = json.loads(path.read_text())["entries"]
    assert [(e["task"], e["language"], e["value"]) for e in entries] == [("shapes", "en", 0.90), ("shapes", "pt", 0.80)]
    return path


def test_no_regression_exits_0_and_writes_a_summary(baseline, tmp_path):
    current = write(tmp_path / "now", [result("shapes", "en", 0.905), result("shapes", "pt", 0.80)])
    summary = tmp_path / "summary.md"
    done = clipbench("compare", str(current), "--baseline", str(baseline), "--summary", str(summary))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "PASS" in done.stdout and "improved" in done.stdout
    assert summary.read_text().startswith("## clipbench compare") and "| shapes " in summary.read_text()


def test_planted_regression_exits_1(baseline, tmp_path):
    current = write(tmp_path / "now", [result("shapes", "en", 0.85), result("shapes", "pt", 0.80)])
    done = clipbench("compare", str(current), "--baseline", str(baseline))
    assert done.returncode == 1
    assert "REGRESSION" in done.stdout and "-5.00" in done.stdout and "FAIL" in done.stdout


def test_tolerance_and_interval(baseline, tmp_path):
    current = write(tmp_path / "now", [result("shapes", "en", 0.895), result("shapes", "pt", 0.77)])
    assert clipbench("compare", str(current), "--baseline", str(baseline), "--tolerance", "0.01").returncode == 1  # pt -3 points
    assert clipbench("compare", str(current), "--baseline", str(baseline), "--tolerance", "0.01", "--use-ci").returncode == 0  # inside [75, 85]


def test_missing_result_fails(baseline, tmp_path):
    current = write(tmp_path / "now", [result("shapes", "en", 0.95)])
    done = clipbench("compare", str(current), "--baseline", str(baseline))
    assert done.returncode == 1 and "MISSING" in done.stdout


def test_checkpoints_of_a_group_are_averaged(baseline, tmp_path):
    current = write(tmp_path / "now", [result("shapes", "en", 0.88, checkpoint="s0"), result("shapes", "en", 0.93, checkpoint="s1"),
                                       result("shapes", "pt", 0.80)])
    done = clipbench("compare", str(current), "--baseline", str(baseline))
    assert done.returncode == 0 and "90.50" in done.stdout  # (88 + 93) / 2


def test_unknown_newer_schema_is_refused(tmp_path):
    newer = dict(result("shapes", "en", 0.9), schema_version=99)
    folder = write(tmp_path / "now", [newer])
    done = clipbench("compare", str(folder), "--baseline", str(folder))
    assert done.returncode == 2 and "schema_version 99 is newer" in done.stderr and "Traceback" not in done.stderr


def test_unreadable_input_exits_2_not_1(baseline, tmp_path):
    """Exit 1 means a regression and nothing else: a missing or broken file is exit 2, one line."""
    current = write(tmp_path / "now", [result("shapes", "en", 0.90), result("shapes", "pt", 0.80)])
    missing = clipbench("compare", str(current), "--baseline", str(tmp_path / "nope.json"))
    (tmp_path / "broken.json").write_text("{not json")
    broken = clipbench("compare", str(current), "--baseline", str(tmp_path / "broken.json"))
    for done, needle in ((missing, "nope.json does not exist"), (broken, "broken.json: not readable as JSON")):
        assert done.returncode == 2 and needle in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
