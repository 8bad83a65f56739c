"""tasks/, prompts/ and protocols/ travel inside a built wheel: install it in a fresh venv and run the demo elsewhere."""

import json
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_install_runs_the_demo_from_another_directory(tmp_path):
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(dist), str(ROOT)],
                   check=True, capture_output=True, timeout=300)
    [wheel] = list(dist.glob("clipbench-*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        assert {"clipbench/__init__.py", "benchmark/api.py"} <= set(archive.namelist())  # the Python API

    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = env_dir / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)],
                   check=True, capture_output=True, timeout=300)
    # the heavy dependencies (torch, open_clip, ...) come from this test's environment, not from the checkout
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    Path(site, "test_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    done = subprocess.run([str(env_dir / "bin" / "clipbench"), "run", "--model", "tiny-shapes", "--task", "shapes",
                           "--task", "shapes-captions", "--language", "en", "--num-workers", "0"],
                          cwd=elsewhere, capture_output=True, text=True, timeout=600,
                          env={"PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1", "HOME": str(tmp_path)})
    assert done.returncode == 0, done.stderr
    results = [json.loads(p.read_text()) for p in sorted((elsewhere / "results" / "runs").rglob("*.json"))]
    assert {r["task"] for r in results} == {"shapes", "shapes-captions"}
    for result in results:
        assert str(env_dir) in result["dataset"]["task_file"]          # read from the wheel's copy
        assert result["run"]["git_commit"] is None                      # not a checkout
    shapes = next(r for r in results if r["task"] == "shapes")
    assert "/_data/prompts/en/shapes.json" in shapes["prompts"]["origin"]
    assert shapes["metrics"]["acc1"] >= 0.9
    assert "| shapes " in done.stdout  # the table
    assert shapes["protocol"]["name"] == "clipbench"
    listed = subprocess.run([str(env_dir / "bin" / "clipbench"), "list", "protocols"], cwd=elsewhere, capture_output=True,
                            text=True, timeout=300, env={"PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1", "HOME": str(tmp_path)})
    assert listed.returncode == 0 and "| capivara " in listed.stdout, listed.stderr
