"""`clipbench run`: plan (model, task, language) jobs, load the model once, evaluate, write results."""

from __future__ import annotations

import datetime as dt
import platform
import time
from dataclasses import dataclass
from pathlib import Path

from . import __version__, data as datasets, models, tasks as task_files
from .embed import ImageEmbeddingCache
from .errors import ClipbenchError
from .evaluate import Outcome, evaluate, task_prompts
from .models.base import check_precision, pick_device
from .paths import git_commit
from .results import SCHEMA_VERSION, result_path, write_atomic
from .specs import ModelSpec, TaskSpec


@dataclass
class RunOptions:
    output: Path = Path("results/runs")
    batch_size: int = 64
    device: str = "auto"
    precision: str = "fp32"
    num_workers: int = 2
    trust_remote_code: bool = False


def plan_languages(model: ModelSpec, task: TaskSpec, requested: list[str]) -> list[str]:
    if requested:
        missing = [lang for lang in requested if lang not in task.languages]
        if missing:
            raise ClipbenchError(
                f"task '{task.name}' has no {', '.join(missing)} version (it has: {', '.join(task.languages)}); "
                "drop that --language or that task", exit_code=2)
        return list(requested)
    if model.languages:
        chosen = [lang for lang in task.languages if lang in model.languages]
        if not chosen:
            raise ClipbenchError(
                f"model '{model.name}' declares {', '.join(model.languages)} and task '{task.name}' has "
                f"{', '.join(task.languages)}; pass --language to run it anyway", exit_code=2)
        return chosen
    return ["en"] if "en" in task.languages else list(task.languages)


def versions() -> dict:
    import importlib.metadata as md

    found = {"python": platform.python_version()}
    for package in ("torch", "torchvision", "open_clip_torch", "transformers", "numpy"):
        try:
            found[package] = md.version(package)
        except md.PackageNotFoundError:
            found[package] = None
    return found


def make_result(model: ModelSpec, encoder, task: TaskSpec, language: str, data, outcome: Outcome,
                options: RunOptions, started: dt.datetime, wall: float) -> dict:
    fresh = not outcome.images_cached and outcome.image_seconds > 0
    return {
        "schema_version": SCHEMA_VERSION,
        "task": task.name,
        "kind": task.kind,
        "language": language,
        "split": task.split,
        "main_score": task.main_score,
        "metrics": outcome.metrics,
        "seed": None,
        "model": {"name": model.name, **encoder.info},
        "dataset": {
            "format": task.dataset.format,
            "location": data.images.location,
            "fingerprint": data.images.fingerprint,
            "n_images": outcome.n_images,
            "n_texts": outcome.n_texts,
            "n_classes": outcome.n_classes,
            "task_file": task.source_file,
        },
        "prompts": None if outcome.prompts is None else {
            "origin": outcome.prompts.origin,
            "sha256": outcome.prompts.sha256,
            "n_templates": len(outcome.prompts.templates),
        },
        "run": {
            "clipbench_version": __version__,
            "git_commit": git_commit(),
            "device": str(encoder.device),
            "precision": encoder.precision,
            "batch_size": options.batch_size,
            "num_workers": options.num_workers,
            "versions": versions(),
            "started_at": started.isoformat(timespec="seconds"),
            "wall_seconds": round(wall, 4),
            "image_seconds": round(outcome.image_seconds, 4),
            "images_per_second": round(outcome.n_images / outcome.image_seconds, 2) if fresh else None,
            "image_embeddings_reused": outcome.images_cached,
        },
    }


def run(model_name: str, task_names: list[str], languages: list[str], options: RunOptions,
        pretrained: str | None = None, echo=print) -> list[dict]:
    if options.batch_size < 1:
        raise ClipbenchError("--batch-size must be at least 1", exit_code=2)
    if options.num_workers < 0:
        raise ClipbenchError("--num-workers must be 0 or more", exit_code=2)
    if not task_names:
        raise ClipbenchError("no --task given; see 'clipbench list tasks'", exit_code=2)
    spec = models.resolve(model_name, pretrained)
    specs = task_files.resolve(task_names)
    jobs = [(task, lang) for task in specs for lang in plan_languages(spec, task, languages)]
    device = pick_device(options.device)
    check_precision(options.precision, device)
    # read every dataset before the model: a missing or malformed dataset fails in seconds, not after loading
    loaded = {}
    for task, lang in jobs:
        data = loaded[(task.name, lang, task.source_file)] = datasets.load(task, lang)
        if task.kind == "classification":
            task_prompts(task, data, lang)

    encoder = models.load(spec, device, options.precision, options.trust_remote_code)
    cache = ImageEmbeddingCache()
    results = []
    for task, lang in jobs:
        started, t0 = dt.datetime.now(dt.timezone.utc), time.perf_counter()
        data = loaded[(task.name, lang, task.source_file)]
        outcome = evaluate(task, data, encoder, cache, lang, options.batch_size, options.num_workers)
        result = make_result(spec, encoder, task, lang, data, outcome, options, started, time.perf_counter() - t0)
        path = write_atomic(result_path(options.output, result), result)
        echo(f"{task.name} [{lang}] {task.main_score} = {100 * outcome.metrics[task.main_score]:.2f}  -> {path}")
        results.append(result)
    return results
