"""`clipbench run`: plan (model, task, language) jobs, load the model once, evaluate, write results."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import time
from dataclasses import dataclass, replace
from pathlib import Path

from . import __version__, custom_prompts, kinds, models, protocols, tasks as task_files
from .download import load_or_fetch
from .data.subset import subset
from .embed import ImageEmbeddingCache
from .errors import ClipbenchError
from .kinds import Outcome, bootstrap, evaluate
from .kinds.stored import queries_file, write as write_queries
from .models.base import check_precision, pick_device
from .paths import DEFAULT_DATA_ROOT, git_commit
from .outputs import check_file, check_folder, write_atomic_with, write_failed
from .result_names import result_name
from .results import (SCHEMA_VERSION, Bootstrap, DatasetInfo, Limit, ModelInfo, PromptsInfo, ProtocolInfo, Result,
                      RunInfo,
                      describe_identity)
from .specs import ModelSpec, ProtocolSpec, TaskSpec


@dataclass
class RunOptions:
    output: Path = Path("results/runs")
    batch_size: int = 64
    device: str = "auto"
    precision: str = "fp32"
    num_workers: int = 2
    trust_remote_code: bool = False
    group: str | None = None  # results of several --model runs named as one group aggregate to mean ± std
    seed: int | None = None  # for --bootstrap and --limit; recorded
    bootstrap: int = 0  # resampling draws for standard errors and 95% intervals
    limit: int | None = None  # evaluate a seeded random subset of this many images per dataset
    text_field: str | None = None  # pair-scoring tasks: compare images with titles or summaries
    data_root: Path = DEFAULT_DATA_ROOT  # task files' relative dataset paths are read under it
    protocol: str = protocols.DEFAULT  # a paper's evaluation choices (protocols/<name>.toml)
    save_predictions: bool = False  # also write <result>.predictions.jsonl, one line per query
    save_queries: bool = False  # also write <result>.queries.npz, the per-query outcomes (compare --paired)
    templates: Path | None = None  # --templates FILE: the classification tasks' templates for this run (custom_prompts)
    classnames: Path | None = None  # --classnames FILE: their class names


def with_custom_prompts(data, custom: custom_prompts.CustomPrompts | None):
    """Classification data carrying the run's --templates/--classnames files; other data (or no files): as it is."""
    return replace(data, custom_prompts=custom) if custom is not None and hasattr(data, "custom_prompts") else data


def plan_languages(model: ModelSpec, task: TaskSpec, requested: list[str]) -> list[str]:
    offered = task.offered_languages
    if requested:
        missing = [lang for lang in requested if lang not in offered]
        if missing:
            raise ClipbenchError(
                f"task '{task.name}' has no {', '.join(missing)} version (it has: {', '.join(offered)}); "
                "drop that --language or that task", exit_code=2)
        return list(requested)
    if model.languages:
        chosen = [lang for lang in offered if lang in model.languages]
        if not chosen:
            raise ClipbenchError(
                f"model '{model.name}' declares {', '.join(model.languages)} and task '{task.name}' has "
                f"{', '.join(offered)}; pass --language to run it anyway", exit_code=2)
        return chosen
    return ["en"] if "en" in task.languages else list(task.languages)


def plan_jobs(model: ModelSpec, tasks: list[TaskSpec], requested: list[str]) -> list[tuple[TaskSpec, str]]:
    """(task, language) pairs in order, without repeats. A language a task keeps in another task
    (`flickr30k` in zh is `flickr30k-cn`) runs, and is recorded, as that task."""
    jobs: list[tuple[TaskSpec, str]] = []
    seen: set[tuple[str, str, str]] = set()
    for task in tasks:
        for lang in plan_languages(model, task, requested):
            target = task_files.holding(task, lang)
            if (target.name, lang, target.source_file) not in seen:
                seen.add((target.name, lang, target.source_file))
                jobs.append((target, lang))
    return jobs


def versions() -> dict:
    import importlib.metadata as md

    found = {"python": platform.python_version()}
    for package in ("torch", "torchvision", "open_clip_torch", "transformers", "numpy"):
        try:
            found[package] = md.version(package)
        except md.PackageNotFoundError:
            found[package] = None
    return found


def recorded_seed(options: RunOptions) -> int | None:
    """The seed a result records (and its file name carries): --seed, or 0 when --bootstrap or --limit drew
    with the default."""
    return options.seed if options.seed is not None or not (options.bootstrap or options.limit) else 0


def checkpoint_name(model: ModelSpec, options: RunOptions, checkpoint: str | None) -> str | None:
    if checkpoint is None and options.group and options.group != model.name:
        return model.name  # one member of a group named on the command line
    return checkpoint


def result_file(output: Path, group: str, checkpoint: str | None, task: str, task_file: str | None,
                variant: str | None, language: str, limit: int | None, seed: int | None, prompts: str | None = None) -> Path:
    """Where a result is written: a registered task is named by its name, any other also by its location; with
    prompts from --templates/--classnames, also by the tag of those files (`prompts`)."""
    location = None if task_files.is_registered(task, task_file) else task_file
    return Path(output) / result_name(group, checkpoint, task, location, variant, language, limit, seed, prompts)


def result_path(output: Path, result: Result) -> Path:
    """Where `result` (read back from disk) was written."""
    overrides = (result.prompts.model_extra or {}).get("overrides") if result.prompts else None
    return result_file(output, result.group, result.model.checkpoint_name, result.task, result.dataset.task_file,
                       result.variant, result.language, result.limit.n if result.limit else None, result.seed,
                       custom_prompts.tag_of(overrides) if overrides else None)


def predictions_file(result: Path) -> Path:
    """Where --save-predictions writes the prediction lines of the result at `result`: beside it."""
    return result.with_name(result.stem + ".predictions.jsonl")


def write_predictions(path: Path, lines) -> Path:
    def write(out):
        for line in lines:
            out.write(json.dumps(line, ensure_ascii=False).encode("utf-8") + b"\n")
    return write_atomic_with(path, write, "--output")


def write_outcome(result: Result, path: Path, task: TaskSpec, outcome: Outcome, save_predictions: bool) -> Path:
    """The prediction lines are written whole under a hidden name first, then the result, then the lines take
    their place: a failed write (of either) leaves the earlier result and its lines as they were."""
    if not save_predictions:
        return result.write(path)
    final = predictions_file(path)
    staged = write_predictions(final.with_name(f".{final.name}.{os.getpid()}.pending.tmp"), kinds.predictions(task, outcome))
    try:
        written = result.write(path)
        os.replace(staged, final)
    except OSError as exc:
        raise write_failed(final, exc, "--output") from None
    finally:
        staged.unlink(missing_ok=True)
    return written


def write_outcome_and_queries(result: Result, path: Path, task: TaskSpec, outcome: Outcome, options: RunOptions) -> Path:
    """`write_outcome`, and with --save-queries the per-query outcomes beside the result (benchmark.kinds.stored):
    written whole under a hidden name first, moved into place once the result that names them is written."""
    if not options.save_queries:
        return write_outcome(result, path, task, outcome, options.save_predictions)
    final = queries_file(path)
    result.run.queries = final.name
    staged = write_queries(final.with_name(f".{final.name}.{os.getpid()}.pending.tmp"), outcome.queries, result)
    try:
        written = write_outcome(result, path, task, outcome, options.save_predictions)
        os.replace(staged, final)
    except OSError as exc:
        raise write_failed(final, exc, "--output") from None
    finally:
        staged.unlink(missing_ok=True)
    return written


def plan_outputs(model: ModelSpec, jobs: list[tuple[TaskSpec, str]], loaded: dict, options: RunOptions,
                 protocol: ProtocolSpec) -> dict:
    """The result file of every (checkpoint, task, language), known before the model loads: two jobs that would
    write one file, a path that cannot be written, or a file there that holds another measurement are refused
    now, not after the compute."""
    planned: dict[Path, str] = {}
    paths = {}
    group, seed = options.group or model.name, recorded_seed(options)
    for checkpoint, _ in model.variants():
        name = checkpoint_name(model, options, checkpoint)
        for task, lang in jobs:
            variant = kinds.variant_of(task, loaded[(task.name, lang, task.source_file)])
            own = getattr(loaded[(task.name, lang, task.source_file)], "custom_prompts", None)  # --templates/--classnames
            path = result_file(options.output, group, name, task.name, task.source_file or None, variant, lang,
                               options.limit, seed, own.tag if own is not None else None)
            job = f"{name or model.name}: task '{task.name}' [{lang}]" + (f" from {task.source_file}" if task.source_file else "")
            if path in planned:
                raise ClipbenchError(f"two jobs of this run would write {path}: {planned[path]} and {job}; "
                                     "run them separately, into different --output folders", exit_code=2)
            planned[path] = job
            check_file(path, "--output")
            if options.save_predictions:
                check_file(predictions_file(path), "--output")
            if options.save_queries:
                check_file(queries_file(path), "--output")
            _check_replaceable(path, (group, name, task.name, variant, lang, options.limit, seed), protocol.name)
            paths[(checkpoint, task.name, lang, task.source_file)] = path
    return paths


def _check_replaceable(path: Path, ours: tuple, protocol: str) -> None:
    """A rerun of one measurement replaces its own file; a file there from another measurement (or another
    protocol: `protocol` is the name results record, an alias's target) stays."""
    try:
        found = Result.model_validate(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError):  # not JSON, or not a result (a pydantic ValidationError is a ValueError)
        return  # nothing there, or not a result file: nothing to lose
    earlier = found.identity
    if earlier == ours and found.protocol_name != protocol:
        raise ClipbenchError(f"{path} holds this measurement under protocol '{found.protocol_name}', and this run uses "
                             f"'{protocol}'; move it away or choose another --output", exit_code=2)
    if earlier != ours:
        raise ClipbenchError(f"{path} holds another measurement ({describe_identity(earlier)}) than this run would "
                             f"write there ({describe_identity(ours)}); move it away or choose another --output", exit_code=2)


def make_result(model: ModelSpec, encoder, task: TaskSpec, language: str, data, outcome: Outcome,
                options: RunOptions, started: dt.datetime, wall: float, checkpoint: str | None = None,
                protocol: ProtocolSpec | None = None, path: Path | None = None) -> Result:
    """`path`: where the result goes when its prediction lines are saved beside it (--save-predictions)."""
    protocol = protocol or protocols.resolve(options.protocol)
    fresh = not outcome.images_cached and outcome.image_seconds > 0
    seed = recorded_seed(options)
    return Result(
        schema_version=SCHEMA_VERSION, task=task.name, kind=task.kind, language=language, split=task.split,
        variant=kinds.variant_of(task, data), main_score=task.main_score, metrics=outcome.metrics, seed=seed,
        bootstrap=Bootstrap(**bootstrap(outcome.queries, options.bootstrap, seed)) if options.bootstrap else None,
        limit=Limit(n=options.limit, seed=seed) if options.limit else None,
        model=ModelInfo(name=model.name, group=options.group or model.name,
                        checkpoint_name=checkpoint_name(model, options, checkpoint), **encoder.info),
        dataset=DatasetInfo(
            format=task.dataset.format, location=data.images.location, fingerprint=data.images.fingerprint,
            n_images=outcome.n_images, n_texts=outcome.n_texts, n_classes=outcome.n_classes,
            task_file=task.source_file, **({"details": outcome.extra} if outcome.extra else {})),
        prompts=None if outcome.prompts is None else PromptsInfo(**outcome.prompts.info()),
        protocol=ProtocolInfo(name=protocol.name, settings=protocol.settings(task.name, language)),
        run=RunInfo(
            clipbench_version=__version__, git_commit=git_commit(), device=str(encoder.device),
            precision=encoder.precision, batch_size=options.batch_size, num_workers=options.num_workers,
            versions=versions(), started_at=started.isoformat(timespec="seconds"), wall_seconds=round(wall, 4),
            image_seconds=round(outcome.image_seconds, 4),
            images_per_second=round(outcome.n_images / outcome.image_seconds, 2) if fresh else None,
            image_embeddings_reused=outcome.images_cached,
            **({"predictions": predictions_file(Path(path)).name} if path else {})),
    )


def run(model_name: str, task_names: list[str], languages: list[str], options: RunOptions,
        pretrained: str | None = None, echo=print) -> list[Result]:
    if options.batch_size < 1:
        raise ClipbenchError("--batch-size must be at least 1", exit_code=2)
    if options.num_workers < 0:
        raise ClipbenchError("--num-workers must be 0 or more", exit_code=2)
    if options.bootstrap < 0 or (options.bootstrap and options.bootstrap < 10):
        raise ClipbenchError("--bootstrap needs at least 10 draws (1000 is usual), or 0 for none", exit_code=2)
    if options.limit is not None and options.limit < 1:
        raise ClipbenchError("--limit must be at least 1", exit_code=2)
    if options.seed is not None and options.seed < 0:
        raise ClipbenchError(f"--seed must be 0 or more, not {options.seed}", exit_code=2)
    if not task_names:
        raise ClipbenchError("no --task given; see 'clipbench list tasks'", exit_code=2)
    check_folder(options.output, "--output")
    protocol = protocols.resolve(options.protocol)
    spec = models.resolve(model_name, pretrained)
    resolved = task_files.resolve(task_names)
    specs = kinds.apply_options(resolved, {"text_field": options.text_field})
    jobs = plan_jobs(spec, specs, languages)
    jobs = [(kinds.under_protocol(task, protocol.settings(task.name, lang)), lang) for task, lang in jobs]
    custom = custom_prompts.read(options.templates, options.classnames)  # checked before anything loads
    if custom is not None and not any(task.kind == "classification" for task, _ in jobs):
        verb = "apply" if " and " in custom.options() else "applies"
        raise ClipbenchError(f"{custom.options()} {verb} to classification tasks and none of "
                             f"{', '.join(dict.fromkeys(task.name for task, _ in jobs))} is one; drop {custom.options()}", exit_code=2)
    device = pick_device(options.device)
    check_precision(options.precision, device)
    # read every dataset before the model: a missing or malformed dataset fails in seconds, not after loading
    loaded = {}
    for task, lang in jobs:
        data = load_or_fetch(task, lang, options.data_root, echo)
        if options.limit:
            data = subset(data, options.limit, options.seed or 0)
        data = with_custom_prompts(data, custom)
        loaded[(task.name, lang, task.source_file)] = data
        kinds.check(task, data, lang, protocol.settings(task.name, lang))
    paths = plan_outputs(spec, jobs, loaded, options, protocol)

    results = []
    for checkpoint, variant in spec.variants():
        encoder = models.load(variant, device, options.precision, options.trust_remote_code)  # once per checkpoint
        cache = ImageEmbeddingCache()  # images embedded once per checkpoint, shared by tasks and languages
        for task, lang in jobs:
            started, t0 = dt.datetime.now(dt.timezone.utc), time.perf_counter()
            data = loaded[(task.name, lang, task.source_file)]
            outcome = evaluate(task, data, encoder, cache, lang, options.batch_size, options.num_workers,
                               protocol.settings(task.name, lang))
            path = paths[(checkpoint, task.name, lang, task.source_file)]
            result = make_result(spec, encoder, task, lang, data, outcome, options, started,
                                 time.perf_counter() - t0, checkpoint, protocol,
                                 path if options.save_predictions else None)
            path = write_outcome_and_queries(result, path, task, outcome, options)
            outcome.scores = None  # the embeddings a retrieval outcome keeps for its lines are no longer needed
            label = f"{spec.name}/{checkpoint}" if checkpoint else spec.name
            echo(f"{label}: {task.name} [{lang}] {task.main_score} = {100 * outcome.metrics[task.main_score]:.2f}  -> {path}")
            results.append(result)
    return results
