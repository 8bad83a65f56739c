"""Measurements behind the notes: `python -m benchmark.dev.perf [--device cuda] [--precision bf16]`.

1. Retrieval metrics on random embeddings of MS-COCO 5k size (25,000 captions x 5,000 images): time,
   and peak memory of our chunked top-k versus the size of CLIP_benchmark's queries x k x gallery one-hot.
2. The image embedding loop of the bundled model on the `shapes` task: images per second by worker count.
3. The zero-shot classifier: all (class, template) prompts in shared batches versus one class per pass.
4. Whether the batch size changes the embeddings bit for bit (why the disk cache's key holds it), and the README
   demo run twice through the command line with a fresh embedding cache: cold, then warm (`--cache-only` runs
   just these two).
"""

from __future__ import annotations

import argparse
import resource
import time

import torch
import torch.nn.functional as F


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def retrieval(device: torch.device, n_images=5000, per_image=5, dim=512, chunk=1024) -> None:
    from .. import metrics

    gen = torch.Generator().manual_seed(0)
    images = F.normalize(torch.randn(n_images, dim, generator=gen), dim=-1).to(device)
    owners = torch.arange(n_images).repeat_interleave(per_image)
    texts = F.normalize(images.cpu()[owners] + torch.randn(len(owners), dim, generator=gen), dim=-1).to(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    before = peak_rss_mib()
    start = time.perf_counter()
    scores = metrics.retrieval_metrics(images, texts, owners, chunk_size=chunk)
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    one_hot_gib = len(owners) * 10 * n_images * 8 / 2**30  # int64 one_hot of (texts, k=10, images)
    peak = f"GPU peak {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB" if device.type == "cuda" else f"RSS peak grew {peak_rss_mib() - before:.0f} MiB"
    print(f"retrieval {len(owners)} captions x {n_images} images, chunk {chunk}: {seconds:.2f} s, {peak}; "
          f"a full queries x 10 x gallery int64 one-hot would take {one_hot_gib:.1f} GiB; mean_recall={scores['mean_recall']:.4f}")


def embedding(device: torch.device, precision: str, workers: list[int], batch_size: int) -> None:
    from .. import data as datasets, models
    from ..embed import embed_images
    from ..paths import DEFAULT_DATA_ROOT
    from ..tasks import task_registry

    task = task_registry().get("shapes")
    source = datasets.load(task, "en", DEFAULT_DATA_ROOT).images  # drawn at run time: the root is not read
    encoder = models.load(models.resolve("tiny-shapes"), device, precision)
    for n in workers:
        embed_images(encoder, source, batch_size, n)  # warm-up
        start = time.perf_counter()
        embed_images(encoder, source, batch_size, n)
        seconds = time.perf_counter() - start
        print(f"embed {len(source)} images, batch {batch_size}, {n} workers, {device}/{precision}: "
              f"{len(source) / seconds:.0f} images/s")


def classifier(device: torch.device, precision: str) -> None:
    from .. import models, prompts
    from ..embed import build_classifier

    encoder = models.load(models.resolve("tiny-shapes"), device, precision)
    shapes = prompts.load("shapes", "en")
    many = prompts.Prompts(shapes.classnames * 64, shapes.templates, "x")  # 1,024 classes, as ImageNet
    start = time.perf_counter()
    batched = build_classifier(encoder, many, batch_size=1024)
    t_batched = time.perf_counter() - start
    start = time.perf_counter()
    per_class = torch.stack([build_classifier(encoder, prompts.Prompts([c], many.templates, "x"), 1024)[0] for c in many.classnames])
    t_single = time.perf_counter() - start
    assert torch.allclose(batched, per_class, atol=1e-5)
    print(f"classifier {len(many.classnames)} classes x {len(many.templates)} templates: batched {t_batched:.2f} s, "
          f"one class per pass {t_single:.2f} s (same vectors within 1e-5)")


def batch_bits(device: torch.device, precision: str) -> None:
    from .. import data as datasets, models, prompts
    from ..embed import embed_images, embed_texts
    from ..paths import DEFAULT_DATA_ROOT
    from ..tasks import task_registry

    source = datasets.load(task_registry().get("shapes"), "en", DEFAULT_DATA_ROOT).images
    encoder = models.load(models.resolve("tiny-shapes"), device, precision)
    reference = embed_images(encoder, source, 64, 0)
    for size in (1, 7, 32, 100, len(source)):
        rows = embed_images(encoder, source, size, 0)
        print(f"images, batch {size} vs 64 ({device}/{precision}): {(rows != reference).any(1).sum().item()} of "
              f"{len(source)} rows differ, by at most {(rows - reference).abs().max().item():.2g}")
    texts = prompts.load("shapes", "en").texts()
    reference = embed_texts(encoder, texts, 256)
    for size in (1, 5, 16):
        rows = embed_texts(encoder, texts, size)
        print(f"texts, batch {size} vs 256: {(rows != reference).any(1).sum().item()} of {len(texts)} rows differ, "
              f"by at most {(rows - reference).abs().max().item():.2g}")


def warm_cache() -> None:
    import os
    import subprocess
    import sys
    import tempfile

    command = [sys.executable, "-m", "benchmark.cli", "run", "--model", "tiny-shapes", "--task", "shapes",
               "--task", "shapes-captions"]
    with tempfile.TemporaryDirectory() as scratch:
        env = {**os.environ, "CLIPBENCH_CACHE": os.path.join(scratch, "cache")}
        seconds = []
        for attempt in ("cold", "warm"):
            start = time.perf_counter()
            subprocess.run([*command, "--output", os.path.join(scratch, attempt)], env=env, check=True,
                           capture_output=True)
            seconds.append(time.perf_counter() - start)
    print(f"README demo through the command line: cold cache {seconds[0]:.2f} s, warm cache {seconds[1]:.2f} s "
          f"({seconds[1] / seconds[0]:.2f}x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--workers", default="0,2")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--cache-only", action="store_true", help="only measurement 4")
    args = parser.parse_args()
    device = torch.device(args.device)
    if not args.cache_only:
        retrieval(device)
        embedding(device, args.precision, [int(w) for w in args.workers.split(",")], args.batch_size)
        classifier(device, args.precision)
    batch_bits(device, args.precision)
    warm_cache()


if __name__ == "__main__":
    main()
