"""The command line. Thin: parses, calls, prints."""

from __future__ import annotations

import os
import sys
from enum import Enum
from pathlib import Path
from typing import List, Optional

import typer

from .errors import ClipbenchError

app = typer.Typer(
    help="Zero-shot benchmarks for CLIP-like models. Add --debug anywhere to see tracebacks.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


class Listing(str, Enum):
    models = "models"
    tasks = "tasks"
    suites = "suites"
    protocols = "protocols"


@app.command()
def run(
    model: str = typer.Option(..., "--model", "-m", help="Registered name, open_clip ARCH (with --pretrained), hf:ORG/NAME, hf-hub:ORG/NAME or local-dir:PATH."),
    task: List[str] = typer.Option(..., "--task", "-t", help="Task or suite name, a CLIP_benchmark webdataset (wds/vtab/cifar10), or a CLIP_benchmark-layout directory. Repeatable."),
    language: List[str] = typer.Option([], "--language", "-l", help="Language code (en, pt, zh). Repeatable. Default: the model's languages."),
    pretrained: Optional[str] = typer.Option(None, "--pretrained", "-p", help="open_clip pretrained tag or checkpoint file (.pt/.safetensors)."),
    output: Path = typer.Option(Path("results/runs"), "--output", "-o", help="Folder for the result JSON files."),
    batch_size: int = typer.Option(64, "--batch-size", "-b"),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
    precision: Optional[str] = typer.Option(None, "--precision", help="fp32, bf16 or fp16 (autocast; similarities stay float32). Default: the protocol's (clipbench's: fp32)."),
    num_workers: int = typer.Option(min(4, os.cpu_count() or 1), "--num-workers", "-j", help="DataLoader workers decoding images."),
    trust_remote_code: bool = typer.Option(False, "--trust-remote-code", help="Allow transformers models that ship their own code."),
    data_root: Optional[Path] = typer.Option(None, "--data-root", envvar="CLIPBENCH_DATA_ROOT", help="Folder holding datasets in their publishers' layouts."),
    group: Optional[str] = typer.Option(None, "--group", help="Name several --model runs as one group (training seeds): tables show mean ± std."),
    bootstrap: int = typer.Option(0, "--bootstrap", help="Bootstrap draws over the test queries for standard errors and 95% intervals (no re-embedding)."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Seed for --bootstrap and --limit (default 0); recorded in every result."),
    limit: Optional[int] = typer.Option(None, "--limit", help="Evaluate a seeded random subset of N images per dataset."),
    text_field: Optional[str] = typer.Option(None, "--text-field", help="Pair-scoring tasks (news-thumbnails): title or summary."),
    protocol: str = typer.Option("clipbench", "--protocol", help="A paper's evaluation choices (template averaging, preprocessing, prompts); see 'clipbench list protocols'."),
    save_predictions: bool = typer.Option(False, "--save-predictions", help="Also write each query's top predictions beside each result, as <result>.predictions.jsonl."),
    save_queries: bool = typer.Option(False, "--save-queries", help="Also write each query's outcomes beside each result, as <result>.queries.npz (for compare --paired, table --significance)."),
    shard: Optional[str] = typer.Option(None, "--shard", metavar="I/N", help="Run only part I of N of the (checkpoint, task, language) jobs, 1-based (1/N ... N/N): every N-th job from the I-th. N runs (a Slurm array, N CI jobs) into one --output split the work; 'clipbench table' merges their results."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Recompute jobs whose result file is already there with the same provenance (by default they are skipped)."),
    no_cache: bool = typer.Option(False, "--no-cache", help="Neither read nor write the embedding cache on disk."),
    cache_dir: Optional[Path] = typer.Option(None, "--cache-dir", envvar="CLIPBENCH_CACHE", help="The embedding cache folder (default ~/.cache/clipbench)."),
    cache_chunk_size: int = typer.Option(2048, "--cache-chunk-size", help="Images per chunk of the embedding cache: a run killed part-way resumes from its last chunk."),
    templates: Optional[Path] = typer.Option(None, "--templates", help="Classification templates for this run ({c} = class name): .txt, one per line, or .json (a list, by task, or CuPL per-class prompts)."),
    classnames: Optional[Path] = typer.Option(None, "--classnames", help="Class names for this run: .txt, one per line in class-index order, or .json (a list, or lists by task)."),
):
    """Evaluate one model on tasks; write one JSON per (task, language) and print a table.

    Data-parallel: torchrun --nproc-per-node N -m benchmark run ... splits every dataset's images and texts
    across N processes (GPUs, or CPU processes over gloo); rank 0 prints and writes the results.
    """
    from .run import RunOptions, run as run_jobs
    from .report.table import run_table

    options = RunOptions(output, batch_size, device, precision, num_workers, trust_remote_code, group, seed, bootstrap, limit, text_field,
                         data_root=_data_root(data_root), protocol=protocol, save_predictions=save_predictions,
                         save_queries=save_queries, shard=shard, overwrite=overwrite,
                         templates=templates, classnames=classnames,
                         cache=not no_cache, cache_dir=cache_dir, cache_chunk_size=cache_chunk_size)
    results = run_jobs(model, task, language, options, pretrained, echo=lambda line: typer.echo(line, err=True))
    if results:  # none: other ranks of a data-parallel run, or a --shard part without jobs
        typer.echo(run_table(results))


@app.command("list")
def list_(what: Listing = typer.Argument(..., help="models, tasks, suites or protocols"), pattern: str = typer.Option("*", "--filter", help="Shell pattern on names.")):
    """List registered models, tasks, suites or protocols."""
    from .listing import list_models, list_protocols, list_suites, list_tasks

    listings = {"models": list_models, "tasks": list_tasks, "suites": list_suites, "protocols": list_protocols}
    typer.echo(listings[what.value](pattern))


data_app = typer.Typer(help="Datasets under the data root: check what is there, download what the hub has.", no_args_is_help=True)
app.add_typer(data_app, name="data")


def _data_root(data_root: Optional[Path]) -> Path:
    """--data-root, else $CLIPBENCH_DATA_ROOT (typer reads it), else the default; handed down as an argument."""
    from .paths import DEFAULT_DATA_ROOT

    return (data_root or DEFAULT_DATA_ROOT).expanduser()


@data_app.command("check")
def data_check(
    task: List[str] = typer.Argument(..., help="Task or suite names."),
    data_root: Optional[Path] = typer.Option(None, "--data-root", envvar="CLIPBENCH_DATA_ROOT"),
):
    """A table, per task and language, of what is present (with counts), MISSING or UNREADABLE (and why), and where
    the data comes from; under it (on stderr) the counts and how to fetch what is missing. Exit 1 when anything is
    not present."""
    from tabulate import tabulate

    from .download import check
    from .fetching import requested
    from .missing import check_summary
    from .tasks import resolve

    specs = resolve(task)
    rows = check(specs, _data_root(data_root))
    typer.echo(tabulate(rows, headers="keys", tablefmt="github", disable_numparse=True))
    for line in check_summary(rows, requested(specs)):
        typer.echo(line, err=True)
    if any(r["status"] in ("MISSING", "UNREADABLE") for r in rows):
        raise typer.Exit(1)


@data_app.command("download")
def data_download(
    task: List[str] = typer.Argument(..., help="Task or suite names."),
    data_root: Optional[Path] = typer.Option(None, "--data-root", envvar="CLIPBENCH_DATA_ROOT"),
    dry_run: bool = typer.Option(False, "--dry-run", help="List what would be fetched (repository, revision, files, sizes when known) and fetch nothing."),
):
    """Fetch the tasks' data from the Hugging Face hub where a task names a hub source (a progress bar per file on
    stderr; a cut download resumes), check every file's size against the hub's listing, and print where each
    dataset landed. Tasks without a hub source are listed with where to get them by hand; exit 1 if any task could
    not be fetched, after trying the others."""
    from .fetching import download_all, dry_run as plan
    from .tasks import resolve

    (plan if dry_run else download_all)(resolve(task), _data_root(data_root), typer.echo)


cache_app = typer.Typer(help="The embedding cache on disk ($CLIPBENCH_CACHE, default ~/.cache/clipbench).", no_args_is_help=True)
app.add_typer(cache_app, name="cache")
CACHE_DIR = typer.Option(None, "--cache-dir", envvar="CLIPBENCH_CACHE", help="The cache folder (default ~/.cache/clipbench).")


def _cache_root(cache_dir: Optional[Path]) -> Path:
    from .cache import default_root

    return (cache_dir or default_root()).expanduser()


@cache_app.command("list")
def cache_list(cache_dir: Optional[Path] = CACHE_DIR,
               verbose: bool = typer.Option(False, "--verbose", "-v", help="Also show each entry's whole key.")):
    """Show the entries (least recently used first) with their kind, state, size, last use and what they embed."""
    from .cache_entries import render

    typer.echo(render(_cache_root(cache_dir), verbose))


@cache_app.command("clear")
def cache_clear(cache_dir: Optional[Path] = CACHE_DIR,
                older_than: Optional[str] = typer.Option(None, "--older-than", help="Only entries not used for this long: 90s, 30m, 12h, 7d, 2w.")):
    """Remove the cache's entries (all, or those not used for --older-than)."""
    from .cache_entries import clear, human_size

    root = _cache_root(cache_dir)
    removed, freed = clear(root, older_than)
    typer.echo(f"removed {removed} entr{'y' if removed == 1 else 'ies'} ({human_size(freed)}) from {root}")


baseline_app = typer.Typer(help="Baselines for regression checks.", no_args_is_help=True)
app.add_typer(baseline_app, name="baseline")


@baseline_app.command("save")
def baseline_save(results: List[Path] = typer.Argument(..., help="Result files or folders."),
                  output: Path = typer.Option(..., "--output", "-o", help="Baseline JSON to write.")):
    """Write the main scores of RESULTS as a baseline file."""
    from .outputs import check_file
    from .report.regress import save_baseline

    check_file(output, "--output")
    typer.echo(f"baseline written to {save_baseline(results, output)}")


@app.command()
def compare(
    results: List[Path] = typer.Argument(..., help="Result files or folders of the run to check; with --paired, A and B."),
    baseline: Optional[Path] = typer.Option(None, "--baseline", help="A baseline file ('clipbench baseline save') or result files/folder."),
    tolerance: float = typer.Option(0.0, "--tolerance", help="Allowed drop of a main score, as a fraction (0.01 = 1 point)."),
    use_ci: bool = typer.Option(False, "--use-ci", help="Also allow drops that stay inside the baseline's bootstrap 95% interval."),
    summary: Optional[Path] = typer.Option(None, "--summary", help="Append a Markdown summary here (e.g. $GITHUB_STEP_SUMMARY)."),
    paired: bool = typer.Option(False, "--paired", help="compare A B --paired: is B - A real? Paired bootstrap over the per-query outcomes (run --save-queries); exit 0."),
    metric: List[str] = typer.Option(["main"], "--metric", help="With --paired: main (each task's main score) or metric names; repeatable."),
    draws: Optional[int] = typer.Option(None, "--draws", help="With --paired: bootstrap draws (default 1000)."),
    seed: Optional[int] = typer.Option(None, "--seed", help="With --paired: seed of the draws (default 0); printed with the table."),
    alpha: Optional[float] = typer.Option(None, "--alpha", help="With --paired: significance level (default 0.05)."),
):
    """Diff RESULTS against a baseline; exit 1 when a main score drops by more than the tolerance.
    With --paired A B: the difference B - A of each main score, its paired-bootstrap 95% interval and p-value."""
    from .outputs import check_file
    from .report.regress import check_provenance, compare as diff, load_baseline, none_shared, render, summarise
    from .results import read_all

    if paired:
        return _compare_paired(results, baseline, tolerance, use_ci, summary, metric, draws, seed, alpha)
    given = [flag for flag, value in (("--draws", draws), ("--seed", seed), ("--alpha", alpha)) if value is not None]
    given += ["--metric"] if metric != ["main"] else []
    if given:
        raise ClipbenchError(f"{', '.join(given)} apply to compare --paired; add --paired or drop them", exit_code=2)
    if baseline is None:
        raise ClipbenchError("compare needs --baseline FILE_OR_DIR (or two results A B and --paired)", exit_code=2)
    if tolerance < 0:
        raise ClipbenchError("--tolerance must be 0 or more", exit_code=2)
    try:
        if summary is not None:
            check_file(summary, "--summary", append=True)
        before = load_baseline(baseline)
        current = summarise(read_all(results))
        assumed = check_provenance(current, before, f"the run ({', '.join(map(str, results))})", f"the baseline {baseline}")
    except ClipbenchError as exc:  # exit 2: unusable input, so that 1 always means a failed comparison
        raise ClipbenchError(str(exc), exit_code=2) from None
    frame, failed = diff(current, before, tolerance, use_ci)
    text = render(frame, failed, tolerance, use_ci) + (f"\n\n{assumed}" if assumed else "")
    typer.echo(text)
    _append_summary(summary, "## clipbench compare\n\n" + text + "\n")
    if none_shared(frame):
        raise ClipbenchError(f"the run ({', '.join(map(str, results))}) has none of the {len(before)} entries of the "
                             f"baseline {baseline}; compare a run of the baseline's models, tasks and languages")
    if failed:
        raise typer.Exit(1)


def _append_summary(summary: Optional[Path], text: str) -> None:
    from .outputs import write_failed

    if summary is None:
        return
    try:
        summary.parent.mkdir(parents=True, exist_ok=True)
        with open(summary, "a", encoding="utf-8") as handle:
            handle.write(text)
    except OSError as exc:
        raise write_failed(summary, exc, "--summary") from None


def _compare_paired(results: List[Path], baseline: Optional[Path], tolerance: float, use_ci: bool, summary: Optional[Path],
                    metric: List[str], draws: Optional[int], seed: Optional[int], alpha: Optional[float]) -> None:
    from .outputs import check_file
    from .report.significance import ALPHA, DRAWS, SEED, compare_paired, render_paired

    refused = [flag for flag, given in (("--baseline", baseline is not None), ("--tolerance", tolerance != 0.0),
                                        ("--use-ci", use_ci)) if given]
    if refused:
        raise ClipbenchError(f"{', '.join(refused)} apply to baseline comparisons, not --paired; drop them", exit_code=2)
    if len(results) != 2:
        raise ClipbenchError(f"compare --paired takes two results, A and B (files or folders), not {len(results)}", exit_code=2)
    draws, seed, alpha = DRAWS if draws is None else draws, SEED if seed is None else seed, ALPHA if alpha is None else alpha
    try:
        if summary is not None:
            check_file(summary, "--summary", append=True)
        frame = compare_paired([results[0]], [results[1]], "main" if metric == ["main"] else list(metric), draws, seed, alpha)
    except ClipbenchError as exc:  # bad input is exit 2, as in the baseline comparison
        raise ClipbenchError(str(exc), exit_code=2) from None
    text = render_paired(frame, draws, seed, alpha)
    typer.echo(text)  # a report, not a gate: exit 0 whatever the verdicts
    _append_summary(summary, "## clipbench compare --paired\n\n" + text + "\n")


@app.command()
def table(
    results: List[Path] = typer.Argument(..., help="Result files or folders."),
    fmt: str = typer.Option("markdown", "--format", "-f", help="markdown, latex (booktabs), csv or html."),
    metric: List[str] = typer.Option(["main"], "--metric", help="main (each task's main score) or metric names; repeatable: columns become task × metric."),
    layout: Optional[str] = typer.Option(None, "--layout", help="A paper's table: capivara-retrieval, capivara-elevater or altclip-flickr30k."),
    reference: Optional[str] = typer.Option(None, "--reference", help="Add published rows (capivara, altclip, openclip or a reference .json) and a Δ column (ours − published, points)."),
    force: bool = typer.Option(False, "--force", help="Average a group's results even when their dataset fingerprints or prompts differ."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write the table to this file instead of printing it."),
    significance: Optional[str] = typer.Option(None, "--significance", help="Mark with † the cells that differ from this group's at p < 0.05 (paired bootstrap; needs run --save-queries)."),
):
    """Paper-style table of RESULTS: a row per model group (mean ± std over checkpoints), a column per task."""
    from .outputs import check_file, write_text_atomic
    from .results import read_all
    from .report.render import render
    from .report.table import build_table

    if output is not None:
        check_file(output, "--output")
    metrics = "main" if metric == ["main"] else list(metric)
    if significance is None:
        built = build_table(read_all(results), metrics, layout, reference, force)
    else:
        from .report.significance import significance_marker
        from .results import read_located

        located = read_located(results)
        mark, note = significance_marker(located, significance)
        built = build_table([r for _, r in located], metrics, layout, reference, force, mark=mark, notes=(note,))
    if fmt.lower() == "csv":  # csv stays cells only; the notes (significance, imported rows) go to stderr
        for line in built.notes:
            typer.echo(line, err=True)
    text = render(built, fmt)
    if output is None:
        typer.echo(text)
    else:
        write_text_atomic(output, text + "\n", "--output")
        typer.echo(f"table written to {output}", err=True)


@app.command()
def plot(
    results: List[Path] = typer.Argument(..., help="Result files or folders."),
    output: Path = typer.Option(..., "--output", "-o", help="Folder for the PNG files."),
    metric: str = typer.Option("main", "--metric", help="main (each task's main score) or a metric name."),
    force: bool = typer.Option(False, "--force", help="Average a group's results even when their dataset fingerprints or prompts differ."),
):
    """PNG figures of RESULTS: a bar chart per task (error bars: std over checkpoints or bootstrap 95% CI) and a heat map."""
    from .outputs import check_folder
    from .report.plot import plot as draw
    from .results import read_all

    check_folder(output, "--output")
    for path in draw(read_all(results), output, metric, force):
        typer.echo(str(path))


@app.command()
def export(
    results: List[Path] = typer.Argument(..., help="Result files or folders (clipbench's, or imported CLIP_benchmark JSONs)."),
    fmt: str = typer.Option(..., "--format", "-f", help="clip-benchmark: one JSON per result as its cli writes them, and the CSV its build makes."),
    output: Path = typer.Option(..., "--output", "-o", help="Folder for the files."),
):
    """Write RESULTS in another harness's format: --format clip-benchmark writes CLIP_benchmark result JSONs and benchmark.csv."""
    from .report.export import export as write

    written = write(results, fmt, output)
    typer.echo(f"wrote {len(written) - 1} CLIP_benchmark result files and {written[-1].name} to {output}", err=True)
    for path in written:
        typer.echo(str(path))


# click's base class of usage errors; typer may vendor its own click, so it is taken from what typer exports
_ClickException = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")


def internal_error_line(exc: BaseException) -> str:
    first = str(exc).splitlines()[0] if str(exc) else ""
    return (f"error: internal error, please report: {type(exc).__name__}: {first} "
            "(re-run with --debug for the traceback)")


def run_app(argv: list[str], debug: bool = False) -> int:
    """Runs the command line and returns its exit code. Every exception that gets here is a ClipbenchError
    (a message written for the user) or a bug (one 'internal error' line); `debug` re-raises both.

    The app runs outside click's standalone mode because that mode turns an EOFError or KeyboardInterrupt
    raised anywhere into a bare "Aborted!"; usage errors and exit codes are handled here instead."""
    command = typer.main.get_command(app)
    try:
        with command.make_context("clipbench", argv) as ctx:
            command.invoke(ctx)
        return 0
    except typer.Exit as exc:  # typer.Exit(code) from a command, --help
        return exc.exit_code
    except _ClickException as exc:  # usage errors: click's own message, exit 2
        exc.show()
        return exc.exit_code
    except ClipbenchError as exc:
        if debug:
            raise
        typer.echo(f"error: {exc}", err=True)
        return exc.exit_code
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        return 130
    except BrokenPipeError:  # the reader went away (`clipbench list tasks | head -3`): nothing left to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except Exception as exc:  # noqa: BLE001 - a bug: whatever a user can cause is a ClipbenchError
        if debug:
            raise
        typer.echo(internal_error_line(exc), err=True)
        return 1


def main() -> None:
    debug = "--debug" in sys.argv[1:]
    sys.exit(run_app([a for a in sys.argv[1:] if a != "--debug"], debug))


if __name__ == "__main__":
    main()
