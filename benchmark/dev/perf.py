"""Measurements behind the notes: `python -m benchmark.dev.perf [--device cuda] [--precision bf16]`.

1. Retrieval metrics on random embeddings of MS-COCO 5k size (25,000 captions x 5,000 images): time,
   and peak memory of our chunked top-k versus the size of CLIP_benchmark's queries x k x gallery one-hot.
2. The image embedding loop of the bundled model on the `shapes` task: images per second by worker count.
3. The zero-shot classifier: all (class, template) prompts in shared batches versus one class per pass.
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--workers", default="0,2")
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()
    device = torch.device(args.device)
    retrieval(device)
    embedding(device, args.precision, [int(w) for w in args.workers.split(",")], args.batch_size)
    classifier(device, args.precision)


if __name__ == "__main__":
    main()
