"""`clipbench run`: plan (model, task, language) jobs, load the model once, evaluate, write results."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from . import __version__, custom_prompts, jobs as job_files, kinds, missing, models, protocols, tasks as task_files
from .distributed import Context, session
from .download import load_or_fetch
from .data.subset import subset
from .cache import DEFAULT_CHUNK
from .cache_ranks import open_cache
from .embed import EmbeddingCache
from .errors import ClipbenchError
from .kinds import Outcome, bootstrap, evaluate
from .kinds.stored import queries_file, write as write_queries
from .models.base import Encoder, check_precision, pick_device
from .paths import DEFAULT_DATA_ROOT, git_commit
from .outputs import check_file, check_folder, write_atomic_with, write_failed
from .result_names import result_name
from .results import (SCHEMA_VERSION, Bootstrap, DatasetInfo, Limit, ModelInfo, PromptsInfo, ProtocolInfo, Result,
                      RunInfo,
                      describe_identity)
from .specs import ModelSpec, ProtocolSpec, TaskSpec

if TYPE_CHECKING:
    import torch


@dataclass
class RunOptions:
    output: Path | None = Path("results/runs")  # None: results are returned, not written (benchmark.api)
    batch_size: int = 64
    device: str = "auto"
    precision: str | None = None  # None: the protocol's for each task (clipbench's: fp32)
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
    shard: str | None = None  # "I/N": run part I of N of the jobs (1-based)
    overwrite: bool = False  # recompute jobs whose result is there with the same provenance (else skipped)
    cache: bool = True  # keep embeddings on disk between runs (benchmark.cache); False: --no-cache
    cache_dir: Path | None = None  # None: $CLIPBENCH_CACHE, else ~/.cache/clipbench
    cache_chunk_size: int = DEFAULT_CHUNK  # images per resumable chunk
    templates: Path | None = None  # --templates FILE: the classification tasks' templates for this run (custom_prompts)
    classnames: Path | None = None  # --classnames FILE: their class names
    step: int | None = None  # a training step (benchmark.api): recorded, and results go to group <name>@step-<step>


@dataclass(frozen=True)
class EncoderSource:
    """How a run gets its encoders: the one thing `clipbench run` (a spec, loaded) and `benchmark.api.evaluate`
    (a module in memory, wrapped) do differently. `resolve()` gives the spec (its name, declared languages and
    checkpoints); `load(variant, device, precision)` one checkpoint's encoder."""

    resolve: Callable[[], ModelSpec]
    load: Callable[[ModelSpec, "torch.device", str], Encoder]


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


def group_name(model: ModelSpec, options: RunOptions) -> str:
    """The group results record (and their folder is named by): --group, else the model's name, with the training
    step when there is one (`name@step-1000`), so that the steps of a run are rows of a table, not averaged."""
    if options.group:
        return options.group
    return model.name if options.step is None else f"{model.name}@step-{options.step}"


def checkpoint_name(model: ModelSpec, options: RunOptions, checkpoint: str | None) -> str | None:
    if checkpoint is None and options.group and options.group != model.name:
        return model.name  # one member of a group named on the command line
    return checkpoint


def result_file(output: Path, group: str, checkpoint: str | None, task: str, task_file: str | None,
                variant: str | None, language: str, limit: int | None, seed: int | None,
                protocol: str = protocols.DEFAULT, prompts: str | None = None) -> Path:
    """Where a result is written: a registered task is named by its name, any other also by its location; a
    protocol other than the default by its name (the one results record: an alias's target); with prompts from
    --templates/--classnames, also by the tag of those files (`prompts`)."""
    location = None if task_files.is_registered(task, task_file) else task_file
    return Path(output) / result_name(group, checkpoint, task, location, variant, language, limit, seed,
                                      None if protocol == protocols.DEFAULT else protocol, prompts)


def result_path(output: Path, result: Result) -> Path:
    """Where `result` (read back from disk) was written."""
    overrides = (result.prompts.model_extra or {}).get("overrides") if result.prompts else None
    return result_file(output, result.group, result.model.checkpoint_name, result.task, result.dataset.task_file,
                       result.variant, result.language, result.limit.n if result.limit else None, result.seed,
                       result.protocol_name, custom_prompts.tag_of(overrides) if overrides else None)


def job_precision(settings: dict, options: RunOptions) -> str:
    """The precision one job runs at: --precision, else its protocol's for the task, else fp32."""
    return options.precision or settings.get("precision") or "fp32"


def check_precisions(jobs: list[tuple[TaskSpec, str]], protocol: ProtocolSpec, options: RunOptions, device) -> None:
    """Every job's precision works on `device`, before anything loads. A protocol's precision the device lacks
    (a paper's fp16 autocast on a CPU) is refused, not swapped for another: the fix names the flag."""
    if options.precision is not None:
        check_precision(options.precision, device)
        return
    for task, lang in jobs:
        wanted = job_precision(protocol.settings(task.name, lang), options)
        try:
            check_precision(wanted, device)
        except ClipbenchError:
            raise ClipbenchError(
                f"--protocol {options.protocol} runs task '{task.name}' at {wanted} autocast, as its paper's "
                f"evaluation did, which needs a CUDA device, and this run is on {device.type}; pass --precision fp32 "
                "(or bf16) to run it here anyway: the result records the precision it ran at (run.precision) beside "
                "the protocol's",
                exit_code=2) from None


def predictions_file(result: Path) -> Path:
    """Where --save-predictions writes the prediction lines of the result at `result`: beside it."""
    return result.with_name(result.stem + ".predictions.jsonl")


def write_predictions(path: Path, lines) -> Path:
    def write(out):
        for line in lines:
            out.write(json.dumps(line, ensure_ascii=False).encode("utf-8") + b"\n")
    return write_atomic_with(path, write, "--output")


def _with_sidecar(final: Path, stage, write_result) -> Path:
    """A file beside a result (its prediction lines, its queries): written whole under a hidden name first by
    `stage(path)`, then the result by `write_result()`, then the file takes its place; a failed write (of either)
    leaves the earlier result and its files as they were."""
    staged = stage(final.with_name(f".{final.name}.{os.getpid()}.pending.tmp"))
    try:
        written = write_result()
        os.replace(staged, final)
    except OSError as exc:
        raise write_failed(final, exc, "--output") from None
    finally:
        staged.unlink(missing_ok=True)
    return written


def write_outcome(result: Result, path: Path, task: TaskSpec, outcome: Outcome, save_predictions: bool) -> Path:
    """The result, and with --save-predictions its prediction lines beside it (`_with_sidecar`)."""
    if not save_predictions:
        return result.write(path)
    return _with_sidecar(predictions_file(path), lambda staged: write_predictions(staged, kinds.predictions(task, outcome)),
                         lambda: result.write(path))


def write_outcome_and_queries(result: Result, path: Path, task: TaskSpec, outcome: Outcome, options: RunOptions) -> Path:
    """`write_outcome`, and with --save-queries the per-query outcomes beside the result (benchmark.kinds.stored),
    moved into place once the result that names them is written."""
    if not options.save_queries:
        return write_outcome(result, path, task, outcome, options.save_predictions)
    final = queries_file(path)
    result.run.queries = final.name
    return _with_sidecar(final, lambda staged: write_queries(staged, outcome.queries, result),
                         lambda: write_outcome(result, path, task, outcome, options.save_predictions))


def plan_outputs(model: ModelSpec, jobs: list[tuple[str | None, ModelSpec, TaskSpec, str]], loaded: dict,
                 options: RunOptions, protocol: ProtocolSpec) -> tuple[dict, dict]:
    """The result file of every (checkpoint, task, language) job, known before the model loads: two jobs that
    would write one file, a path that cannot be written, or a file there that holds another measurement are
    refused now, not after the compute. Also the jobs already done: their file holds a result with the same
    provenance (see benchmark.jobs), which is returned instead of recomputed, unless --overwrite."""
    planned: dict[Path, str] = {}
    paths, done = {}, {}
    group, seed = group_name(model, options), recorded_seed(options)
    software = {"clipbench_version": __version__, "git_commit": git_commit(), "versions": versions()}
    for checkpoint, loads, task, lang in jobs:
        name = checkpoint_name(model, options, checkpoint)
        data = loaded[(task.name, lang, task.source_file)]
        variant = kinds.variant_of(task, data)
        own = getattr(data, "custom_prompts", None)  # --templates/--classnames
        path = result_file(options.output, group, name, task.name, task.source_file or None, variant, lang,
                           options.limit, seed, protocol.name, own.tag if own is not None else None)
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
        key = (checkpoint, task.name, lang, task.source_file)
        paths[key] = path
        found = _check_replaceable(path, (group, name, task.name, variant, lang, options.limit, seed), protocol.name)
        if found is None or options.overwrite:
            continue
        settings = protocol.settings(task.name, lang)
        expected = job_files.planned(
            group=group, checkpoint_name=name, task=task, language=lang, variant=variant, data=data,
            facts=kinds.facts(task, data, lang, settings), model=loads, options=options, recorded_seed=seed,
            precision=job_precision(settings, options),
            protocol_name=protocol.name, settings=settings, software=software)
        if job_files.difference(found, path, expected) is None:
            done[key] = found
    return paths, done


def _check_replaceable(path: Path, ours: tuple, protocol: str) -> Result | None:
    """A rerun of one measurement replaces its own file (returned, to compare its provenance); a file there from
    another measurement (or another protocol: `protocol` is the name results record, an alias's target) stays."""
    try:
        found = Result.model_validate(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError):  # not JSON, or not a result (a pydantic ValidationError is a ValueError)
        return None  # nothing there, or not a result file: nothing to lose
    earlier = found.identity
    if earlier == ours and found.protocol_name != protocol:
        raise ClipbenchError(f"{path} holds this measurement under protocol '{found.protocol_name}', and this run uses "
                             f"'{protocol}'; move it away or choose another --output", exit_code=2)
    if earlier != ours:
        raise ClipbenchError(f"{path} holds another measurement ({describe_identity(earlier)}) than this run would "
                             f"write there ({describe_identity(ours)}); move it away or choose another --output", exit_code=2)
    return found


def make_result(model: ModelSpec, encoder, task: TaskSpec, language: str, data, outcome: Outcome,
                options: RunOptions, started: dt.datetime, wall: float, checkpoint: str | None = None,
                protocol: ProtocolSpec | None = None, path: Path | None = None, world_size: int = 1) -> Result:
    """`path`: where the result goes when its prediction lines are saved beside it (--save-predictions);
    `world_size`: the ranks of a data-parallel run (recorded when more than one)."""
    protocol = protocol or protocols.resolve(options.protocol)
    embedded = outcome.n_images if outcome.images_embedded is None and not outcome.images_cached else outcome.images_embedded
    seed = recorded_seed(options)
    return Result(
        schema_version=SCHEMA_VERSION, task=task.name, kind=task.kind, language=language, split=task.split,
        variant=kinds.variant_of(task, data), main_score=task.main_score, metrics=outcome.metrics, seed=seed,
        bootstrap=Bootstrap(**bootstrap(outcome.queries, options.bootstrap, seed)) if options.bootstrap else None,
        limit=Limit(n=options.limit, seed=seed) if options.limit else None,
        model=ModelInfo(name=model.name, group=group_name(model, options),
                        checkpoint_name=checkpoint_name(model, options, checkpoint),
                        **({"step": options.step} if options.step is not None else {}), **encoder.info),
        dataset=DatasetInfo(
            format=task.dataset.format, location=data.images.location, fingerprint=data.images.fingerprint,
            n_images=outcome.n_images, n_texts=outcome.n_texts, n_classes=outcome.n_classes,
            task_file=task.source_file, **({"source": data.origin} if getattr(data, "origin", None) else {}),
            **({"details": outcome.extra} if outcome.extra else {})),
        prompts=None if outcome.prompts is None else PromptsInfo(**outcome.prompts.info()),
        protocol=ProtocolInfo(name=protocol.name, settings=protocol.settings(task.name, language)),
        run=RunInfo(
            clipbench_version=__version__, git_commit=git_commit(), device=str(encoder.device),
            precision=encoder.precision, batch_size=options.batch_size, num_workers=options.num_workers,
            versions=versions(), started_at=started.isoformat(timespec="seconds"), wall_seconds=round(wall, 4),
            image_seconds=round(outcome.image_seconds, 4),
            images_per_second=round(embedded / outcome.image_seconds, 2) if embedded and outcome.image_seconds > 0 else None,
            image_embeddings_reused=outcome.images_cached, image_embeddings_from_disk=outcome.images_from_disk,
            text_embeddings_from_disk=outcome.texts_from_disk, images_embedded=embedded,
            **({"predictions": predictions_file(Path(path)).name} if path else {}),
            **({"world_size": world_size} if world_size > 1 else {})),
    )


def check_options(options: RunOptions) -> None:
    if options.batch_size < 1:
        raise ClipbenchError("--batch-size must be at least 1", exit_code=2)
    if options.num_workers < 0:
        raise ClipbenchError("--num-workers must be 0 or more", exit_code=2)
    if options.bootstrap < 0 or (options.bootstrap and options.bootstrap < 10):
        raise ClipbenchError("--bootstrap needs at least 10 draws (1000 is usual), or 0 for none", exit_code=2)
    if options.limit is not None and options.limit < 1:
        raise ClipbenchError("--limit must be at least 1", exit_code=2)
    if options.cache_chunk_size < 1:
        raise ClipbenchError("--cache-chunk-size must be at least 1", exit_code=2)
    if options.seed is not None and options.seed < 0:
        raise ClipbenchError(f"--seed must be 0 or more, not {options.seed}", exit_code=2)


def run(model_name: str, task_names: list[str], languages: list[str], options: RunOptions,
        pretrained: str | None = None, echo=print) -> list[Result]:
    """Under torchrun, every rank runs this: each embeds its part of every dataset, rank 0 alone prints,
    writes and returns results (the others return [])."""
    check_options(options)
    device = pick_device(options.device)
    source = EncoderSource(
        resolve=lambda: models.resolve(model_name, pretrained),
        load=lambda variant, device, precision: models.load(variant, device, precision, options.trust_remote_code))
    with session(device) as ctx:
        return run_jobs(source, task_names, languages, options, echo if ctx.is_main else _quiet, ctx)


def _quiet(_line: str) -> None:
    pass


def run_jobs(source: EncoderSource, task_names: list[str], languages: list[str], options: RunOptions, echo,
             ctx: Context) -> list[Result]:
    """Plan, load the data, embed, score, build (and with an --output, write) the results: the one path of
    `clipbench run` and `benchmark.api.evaluate`; only where the encoders come from (`source`) differs."""
    with ctx.together():
        if not task_names:
            raise ClipbenchError("no --task given; see 'clipbench list tasks'", exit_code=2)
        chosen = job_files.parse_shard(options.shard)
        if ctx.is_main and options.output is not None:
            check_folder(options.output, "--output")
        protocol = protocols.resolve(options.protocol)
        spec = source.resolve()
        resolved = task_files.resolve(task_names)
        specs = kinds.apply_options(resolved, {"text_field": options.text_field})
        everything = [(checkpoint, variant, task, lang) for checkpoint, variant in spec.variants()
                      for task, lang in plan_jobs(spec, specs, languages)]
        everything = [(checkpoint, variant, kinds.under_protocol(task, protocol.settings(task.name, lang)), lang)
                      for checkpoint, variant, task, lang in everything]
        jobs = job_files.shard(everything, chosen)
        check_precisions([(task, lang) for _, _, task, lang in jobs], protocol, options, ctx.device)
        custom = custom_prompts.read(options.templates, options.classnames)  # checked before anything loads
        if custom is not None and not any(task.kind == "classification" for _, _, task, _ in jobs):
            verb = "apply" if " and " in custom.options() else "applies"
            names = ", ".join(dict.fromkeys(task.name for _, _, task, _ in jobs))
            raise ClipbenchError(f"{custom.options()} {verb} to classification tasks and none of {names} is one; "
                                 f"drop {custom.options()}", exit_code=2)
    if chosen and not jobs:
        echo(f"--shard {chosen[0]}/{chosen[1]}: no job in this part (the run has {len(everything)}); nothing to do")
        return []
    # read every dataset before the model: a missing or malformed dataset fails in seconds, not after loading.
    # Rank 0 first: a dataset it fetches from the hub is then there for the others.
    loaded: dict = {}
    for turn in (True, False):
        with ctx.together():
            if ctx.is_main == turn:
                loaded = load_data([(task, lang) for _, _, task, lang in jobs], options, protocol, echo, custom)
    with ctx.together():
        writes = ctx.is_main and options.output is not None
        paths, done = plan_outputs(spec, jobs, loaded, options, protocol) if writes else ({}, {})
    skipped = ctx.broadcast(set(done))  # every rank follows rank 0's plan
    for key in done:
        echo(f"skip: {paths[key]} exists (same provenance); --overwrite to recompute")

    # in a data-parallel run, rank 0 owns the cache and decides for every rank (benchmark.cache_ranks)
    disk = open_cache(ctx, options.cache, options.cache_dir, echo)
    results = dict(done)
    for checkpoint, variant in spec.variants():
        todo = [(task, lang) for c, _, task, lang in jobs if c == checkpoint and (c, task.name, lang, task.source_file) not in skipped]
        if not todo:
            continue  # every job of this checkpoint is done (or in another shard): the model is not loaded
        with ctx.together():
            # once per checkpoint; images embedded once per checkpoint and precision, shared by tasks and languages
            loaded_encoder = source.load(variant, ctx.device, options.precision or "fp32")
        caches: dict[str, EmbeddingCache] = {}
        for task, lang in todo:
            started, t0 = dt.datetime.now(dt.timezone.utc), time.perf_counter()
            data = loaded[(task.name, lang, task.source_file)]
            settings = protocol.settings(task.name, lang)
            # the protocol's precision and resize for this task (the interpolation is part of the cache key)
            encoder = loaded_encoder.configured(job_precision(settings, options), settings.get("interpolation"))
            # images embedded once per checkpoint and precision, shared by tasks and languages, kept on disk between runs
            cache = caches.setdefault(encoder.precision, EmbeddingCache(disk, options.cache_chunk_size))
            with ctx.together():
                outcome = evaluate(task, data, encoder, cache, lang, options.batch_size, options.num_workers, settings)
            key = (checkpoint, task.name, lang, task.source_file)
            with ctx.together():  # rank 0 writes; a failed write stops every rank
                if ctx.is_main:
                    path = paths.get(key)  # None: nothing is written (no --output)
                    result = make_result(spec, encoder, task, lang, data, outcome, options, started,
                                         time.perf_counter() - t0, checkpoint, protocol,
                                         path if options.save_predictions else None, ctx.world_size)
                    if path is not None:
                        path = write_outcome_and_queries(result, path, task, outcome, options)
                    label = f"{spec.name}/{checkpoint}" if checkpoint else spec.name
                    echo(f"{label}: {task.name} [{lang}] {task.main_score} = {100 * outcome.metrics[task.main_score]:.2f}"
                         + (f"  -> {path}" if path is not None else ""))
                    results[key] = result
            outcome.scores = None  # the embeddings a retrieval outcome keeps for its lines are no longer needed
    order = [(c, task.name, lang, task.source_file) for c, _, task, lang in jobs]
    return [results[key] for key in order if key in results]


def load_data(jobs: list[tuple[TaskSpec, str]], options: RunOptions, protocol: ProtocolSpec, echo,
              custom: custom_prompts.CustomPrompts | None = None) -> dict:
    """Every (task, language)'s data (its --limit subset, carrying the run's --templates/--classnames), checked
    by its kind; each read once. Every job is tried before any failure stops the run, so that one error names every
    missing or unusable dataset (benchmark.missing), with the command that fetches them."""
    loaded: dict = {}
    problems: list[missing.Unusable] = []
    for task, lang in jobs:
        if (task.name, lang, task.source_file) in loaded:
            continue
        if missing.known_missing(problems, task):  # its other languages: the same absent files, not fetched again
            missing.add_language(problems, task, lang)
            continue
        try:
            data = load_or_fetch(task, lang, options.data_root, echo)
            if options.limit:
                data = subset(data, options.limit, options.seed or 0)
            data = with_custom_prompts(data, custom)
            kinds.check(task, data, lang, protocol.settings(task.name, lang))
        except ClipbenchError as exc:
            missing.collect(problems, task, lang, exc, options.data_root)
            continue
        loaded[(task.name, lang, task.source_file)] = data
    if problems:
        raise missing.report(problems, options.data_root)
    return loaded
