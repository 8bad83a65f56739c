"""The typed result record (benchmark.results.Result): a file reads and writes back unchanged, fields it does
not declare are kept, and older schema versions have their migration."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmark.results import FIRST_VERSION, MIGRATIONS, SCHEMA_VERSION, Result, write_atomic
from helpers import clipbench_here as clipbench

GOLDEN = sorted((Path(__file__).parent / "golden" / "demo").rglob("*.json"))


@pytest.mark.parametrize("path", GOLDEN, ids=lambda p: p.name)
def test_a_result_file_writes_back_unchanged(path, tmp_path):
    """Field order, the encoder's own provenance keys, intervals and null fields all survive the model, text for
    text (the golden files are stored without the final newline)."""
    copy = Result.from_disk(path).write(tmp_path / path.name)
    assert copy.read_text(encoding="utf-8") == path.read_text(encoding="utf-8").rstrip("\n") + "\n"


def test_fields_it_does_not_declare_are_kept(tmp_path):
    payload = json.loads(GOLDEN[0].read_text(encoding="utf-8"))
    payload["note"] = "hand-made"  # a person's note, or a field from a newer clipbench
    payload["model"]["trained_on"] = "shapes"
    payload["dataset"]["license"] = "CC0"
    record = Result.from_disk(write_atomic(tmp_path / "r.json", payload))
    assert json.dumps(record.payload()) == json.dumps(payload)
    assert record.model.name == "tiny-shapes" and record.key == ("tiny-shapes", record.task, record.language)


def test_every_older_schema_version_has_its_migration():
    """A SCHEMA_VERSION bump needs its step in MIGRATIONS, or the files written before it could not be read."""
    assert sorted(MIGRATIONS) == list(range(FIRST_VERSION, SCHEMA_VERSION))


def test_a_baseline_of_a_subset_compares_with_the_same_subset(tmp_path):
    """The --limit of a baseline entry (a JSON list) and of a result (n, seed) are one typed value."""
    payload = json.loads(GOLDEN[0].read_text(encoding="utf-8"))
    payload["limit"] = {"n": 6, "seed": 0}
    runs = tmp_path / "runs"
    write_atomic(runs / "r.json", payload)
    baseline = tmp_path / "baseline.json"
    assert clipbench("baseline", "save", str(runs), "--output", str(baseline)).returncode == 0
    assert json.loads(baseline.read_text())["entries"][0]["limit"] == [6, 0]
    done = clipbench("compare", str(runs), "--baseline", str(baseline))
    assert done.returncode == 0 and "| ok " in done.stdout, done.stdout + done.stderr
