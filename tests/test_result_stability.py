"""The result files of the README demo stay what they were, field for field: metrics, bootstrap intervals
(`--bootstrap 200 --seed 0`), provenance and key order. A restructuring must not move a number.

tests/golden/demo/ holds the six files the demo wrote at the commit before the issue-9 restructuring. Fields that
measure this machine or this moment (timings, start time, git commit, package versions, and where the embeddings
came from, which depends on what the disk cache held) are left out, and the checkout's own path is written as <repo>.
A second run reads every embedding from the disk cache the first one filled, and must write the same files. When a change of numbers or of the schema is intended, regenerate
them deliberately and say so in the commit:

    python tests/test_result_stability.py --regenerate
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests" / "golden" / "demo"
COMMAND = ("run", "--model", "tiny-shapes", "--task", "shapes", "--task", "shapes-captions",
           "--bootstrap", "200", "--seed", "0", "--num-workers", "2")
VOLATILE = ("git_commit", "started_at", "wall_seconds", "image_seconds", "images_per_second", "versions",
            # where the embeddings came from depends on what the disk cache held (fields added with it)
            "image_embeddings_from_disk", "text_embeddings_from_disk", "images_embedded")


def normalised(path: Path) -> str:
    return json.dumps(stripped(json.loads(path.read_text(encoding="utf-8"))), indent=2, ensure_ascii=False).replace(str(ROOT), "<repo>")


def stripped(payload: dict) -> dict:
    for field in VOLATILE:
        payload["run"].pop(field)
    return payload


def demo_files(out: Path, env: dict | None = None) -> dict[str, str]:
    sys.path.insert(0, str(ROOT / "tests"))
    from helpers import clipbench

    done = clipbench(*COMMAND, "--output", str(out), cwd=ROOT, env=env)
    assert done.returncode == 0, done.stderr
    return {p.relative_to(out).as_posix(): normalised(p) for p in sorted(out.rglob("*.json"))}


def assert_golden(now: dict[str, str]) -> None:
    before = {p.relative_to(GOLDEN).as_posix(): p.read_text(encoding="utf-8") for p in sorted(GOLDEN.rglob("*.json"))}
    assert sorted(now) == sorted(before)
    for name, text in before.items():
        assert now[name] == text, f"{name} differs from tests/golden/demo/{name}"


def test_demo_results_are_unchanged(tmp_path):
    assert_golden(demo_files(tmp_path))


def test_demo_results_are_unchanged_when_every_embedding_comes_from_the_disk_cache(tmp_path):
    env = {"CLIPBENCH_CACHE": str(tmp_path / "cache")}
    demo_files(tmp_path / "cold", env)
    assert_golden(demo_files(tmp_path / "warm", env))
    warm = [json.loads(p.read_text(encoding="utf-8"))["run"] for p in sorted((tmp_path / "warm").rglob("*.json"))]
    assert len(warm) == 6
    assert all(run["image_embeddings_from_disk"] and run["text_embeddings_from_disk"] and run["images_embedded"] == 0
               for run in warm), warm


if __name__ == "__main__" and sys.argv[1:] == ["--regenerate"]:
    import tempfile

    with tempfile.TemporaryDirectory() as scratch:
        for name, text in demo_files(Path(scratch)).items():
            (GOLDEN / name).parent.mkdir(parents=True, exist_ok=True)
            (GOLDEN / name).write_text(text, encoding="utf-8")
    print(f"wrote {GOLDEN}")
