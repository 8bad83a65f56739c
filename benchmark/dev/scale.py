"""Issue 11's measurements, through the command line as a user runs it: `python -m benchmark.dev.scale`.

1. The README demo: first run with an empty embedding cache, then the same command again with `--overwrite`
   (every embedding read from the cache; the model still loads), then plainly again (every job skipped: its
   result is there with the same provenance).
2. A retrieval task in one language, then its second language in a new process: the images come from the cache.
3. A run killed (SIGKILL) half-way through embedding a dataset, then resumed, against an uninterrupted run:
   images embedded and wall time. The killed run is stopped at a known image (a hook blocks the image loop
   there, as tests/test_cache_cli.py does), not at a moment.
4. The demo under torchrun with 1 and with 2 processes over gloo (CPU): wall time and the largest metric
   difference.
Every run is a fresh `python -m benchmark.cli` process; times include process start, imports and model load.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DEMO = ("--model", "tiny-shapes", "--task", "shapes", "--task", "shapes-captions")
# 400 images in chunks of 40 (whole batches of 8): ten chunks; the killed run stops as image 200 is reached
RESUME = ("--model", "tiny-shapes", "--task", "shapes", "--language", "en", "--num-workers", "0", "--batch-size", "8",
          "--cache-chunk-size", "40")
HALF = 200
BLOCKING = """
import sys, time
import benchmark.embed as embed

real = embed.embed_images

def blocking(*args, indices, **kwargs):
    if indices.start >= HALF:
        print("blocked", flush=True)
        time.sleep(600)
    return real(*args, indices=indices, **kwargs)

embed.embed_images = blocking
from benchmark.cli import main
sys.argv[0] = "clipbench"
main()
"""


def clipbench(args, env: dict, launcher=(sys.executable, "-m", "benchmark.cli")) -> float:
    start = time.perf_counter()
    done = subprocess.run([*launcher, "run", *args], env={**os.environ, **env}, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n{done.stderr}")
    return time.perf_counter() - start


def results(folder: Path) -> list[dict]:
    return [json.loads(p.read_text(encoding="utf-8")) for p in sorted(folder.rglob("*.json"))]


def embedded(folder: Path) -> int:
    return sum(r["run"].get("images_embedded") or 0 for r in results(folder))


def demo_rerun(scratch: Path) -> None:
    env, out = {"CLIPBENCH_CACHE": str(scratch / "cache")}, scratch / "demo"
    cold = clipbench([*DEMO, "-o", str(out)], env)
    warm = clipbench([*DEMO, "-o", str(out), "--overwrite"], env)
    hits = [r["run"].get("image_embeddings_from_disk") for r in results(out)]
    skipped = clipbench([*DEMO, "-o", str(out)], env)
    print(f"1. README demo: first run {cold:.2f} s; again with --overwrite, embeddings from the cache {warm:.2f} s "
          f"({warm / cold:.2f}x; images from the cache: {hits}); again as it is, every job skipped {skipped:.2f} s "
          f"({skipped / cold:.2f}x)")


def second_language(scratch: Path) -> None:
    env, out = {"CLIPBENCH_CACHE": str(scratch / "cache-lang")}, scratch / "lang"
    task = ("--model", "tiny-shapes", "--task", "shapes-captions")
    first = clipbench([*task, "--language", "en", "-o", str(out)], env)
    second = clipbench([*task, "--language", "pt", "-o", str(out)], env)
    pt = [r for r in results(out) if r["language"] == "pt"][0]["run"]
    print(f"2. shapes-captions: en in a first process {first:.2f} s; pt in a new process {second:.2f} s "
          f"(images from the cache: {pt.get('image_embeddings_from_disk')}, images embedded: {pt.get('images_embedded')})")


def killed_and_resumed(scratch: Path) -> None:
    whole = scratch / "whole"
    uninterrupted = clipbench([*RESUME, "-o", str(whole)], {"CLIPBENCH_CACHE": str(scratch / "cache-whole")})
    env, out = {**os.environ, "CLIPBENCH_CACHE": str(scratch / "cache-resume")}, scratch / "resumed"
    start = time.perf_counter()
    killed = subprocess.Popen([sys.executable, "-c", BLOCKING.replace("HALF", str(HALF)), "run", *RESUME, "-o", str(out)],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    said = killed.stdout.readline().strip()
    until_kill = time.perf_counter() - start
    killed.send_signal(signal.SIGKILL)
    killed.communicate()
    if said != "blocked":
        raise SystemExit("the run to kill ended before it reached the half-way image")
    resumed = clipbench([*RESUME, "-o", str(out)], env)
    same = results(out)[0]["metrics"] == results(whole)[0]["metrics"]
    total = until_kill + resumed
    print(f"3. shapes (400 images, chunks of 40): uninterrupted {uninterrupted:.2f} s, {embedded(whole)} images embedded; "
          f"killed at image {HALF} after {until_kill:.2f} s, resumed in {resumed:.2f} s embedding {embedded(out)} images: "
          f"total {total:.2f} s ({total / uninterrupted:.2f}x), images embedded {HALF + embedded(out)} "
          f"({(HALF + embedded(out)) / embedded(whole):.2f}x); same metrics: {same}")


def data_parallel(scratch: Path) -> None:
    times, metrics = {}, {}
    for n in (1, 2):
        out = scratch / f"ranks{n}"
        launcher = (sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(n), "-m", "benchmark")
        times[n] = clipbench([*DEMO, "-o", str(out), "--no-cache", "--num-workers", "0"], {"OMP_NUM_THREADS": "1"},
                             launcher)
        metrics[n] = {(r["task"], r["language"]): r["metrics"] for r in results(out)}
    gap = max(abs(metrics[1][key][name] - metrics[2][key][name]) for key in metrics[1] for name in metrics[1][key])
    print(f"4. README demo under torchrun over gloo (CPU, 1 thread per process): 1 process {times[1]:.2f} s, "
          f"2 processes {times[2]:.2f} s; largest metric difference {gap:.1e}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", type=int, choices=(1, 2, 3, 4), action="append", help="run only these measurements")
    chosen = parser.parse_args().only or [1, 2, 3, 4]
    steps = {1: demo_rerun, 2: second_language, 3: killed_and_resumed, 4: data_parallel}
    with tempfile.TemporaryDirectory() as scratch:
        for number in chosen:
            steps[number](Path(scratch))


if __name__ == "__main__":
    main()
