"""`clipbench.evaluate`: the benchmark of a model held in memory (a training loop's), in the same process.

The tasks, data, scoring and result records are `clipbench run`'s (benchmark.run.run_jobs); only the encoder
differs: the module given, wrapped as an open_clip (`preprocess` + `tokenizer`) or transformers (`processor`)
encoder, instead of one loaded from a spec. Nothing is loaded, no process is started, the model is not moved.
"""

from __future__ import annotations

import contextlib
import re
from pathlib import Path
from typing import Callable, Iterator, Sequence

import torch

from . import protocols
from .distributed import Context
from .errors import ClipbenchError
from .models.base import Encoder, count_parameters
from .paths import DEFAULT_DATA_ROOT
from .results import Result
from .run import EncoderSource, RunOptions, check_options, run_jobs
from .specs import ModelSpec


def evaluate(model: torch.nn.Module, preprocess: Callable | None = None, tokenizer: Callable | None = None, *,
             processor=None, tasks: str | Sequence[str], languages: str | Sequence[str] = (),
             output: str | Path | None = None, name: str = "in-memory", step: int | None = None,
             device: str | torch.device | None = None, precision: str | None = "fp32", batch_size: int = 64,
             num_workers: int = 2, data_root: str | Path | None = None, protocol: str = protocols.DEFAULT,
             bootstrap: int = 0, seed: int | None = None, limit: int | None = None,
             templates: str | Path | None = None, classnames: str | Path | None = None,
             text_field: str | None = None, save_predictions: bool = False, save_queries: bool = False,
             echo: Callable[[str], object] | None = None) -> list[Result]:
    """Evaluate `model` on `tasks` (names, suites, task files or dataset folders, as `clipbench run --task`
    takes them) in `languages` (default: each task's en, else its languages) and return one
    `benchmark.results.Result` per (task, language), the records `clipbench run` writes.

    - open_clip: `model` with encode_image/encode_text, its `preprocess` (PIL image -> tensor) and `tokenizer`;
      transformers: a CLIPModel-like `model` (get_image_features/get_text_features) and its `processor`.
    - `output`: a folder to also write the result files to (as `clipbench run --output`), else nothing is written.
    - `name`: the model name results record; `step`: the training step, recorded (`model.step`) and part of the
      group (`<name>@step-<step>`), so each step writes its own files and is its own row of `clipbench table`.
    - `device`: where the model's parameters are (the default); another one is refused, never moved to.
    - `precision`: fp32, bf16 or fp16 autocast; None for the protocol's. `limit`, `seed`, `bootstrap`,
      `protocol`, `data_root`, `batch_size`, `num_workers`: as `clipbench run`'s options.
    - `templates`, `classnames`: files overriding the classification tasks' prompts for this call (as
      `clipbench run --templates/--classnames`); `text_field`: pair-scoring tasks' title or summary.
    - `save_predictions`, `save_queries`: also write the side files beside each result (`--save-queries` is what
      `clipbench compare --paired` needs); they need `output`.
    - `echo`: called with one line per result (default: silent).

    The model runs in eval mode under torch.no_grad; every submodule's train/eval mode is restored afterwards,
    also when evaluation fails. Errors are `ClipbenchError`s with a one-line message.
    """
    task_names = [tasks] if isinstance(tasks, str) else list(tasks)
    language_list = [languages] if isinstance(languages, str) else list(languages)
    if (save_predictions or save_queries) and output is None:
        which = "save_predictions" if save_predictions else "save_queries"
        raise ClipbenchError(f"{which}=True writes files beside the results; pass output= (a folder) too")
    where = model_device(model, device)
    options = RunOptions(
        output=None if output is None else Path(output), batch_size=batch_size, device=str(where),
        precision=precision, num_workers=num_workers, seed=seed, bootstrap=bootstrap, limit=limit,
        data_root=Path(data_root).expanduser() if data_root is not None else DEFAULT_DATA_ROOT, protocol=protocol,
        step=step, templates=None if templates is None else Path(templates),
        classnames=None if classnames is None else Path(classnames), text_field=text_field,
        save_predictions=save_predictions, save_queries=save_queries,
        # Skip-existing compares a result's recorded weights file and sha256 with the spec's: a module in memory
        # has neither, so an earlier file of the same step is always recomputed and replaced.
        overwrite=True,
        # No disk cache: it keys embeddings by the weights' identity, and a module in memory has none that
        # survives an optimiser step (keyed by `name`, the next call would read the last call's stale embeddings).
        cache=False)
    encoder = wrap(model, preprocess, tokenizer, processor, name, where, step)
    source = EncoderSource(resolve=lambda: spec_of(name, encoder),
                           load=lambda _variant, _device, precision: encoder.configured(precision))
    with evaluation_mode(model), torch.no_grad(), in_api_words():
        check_options(options)
        # one process: under torchrun, call it on one rank with the unwrapped module (ddp_model.module)
        return run_jobs(source, task_names, language_list, options, echo or _quiet, Context(device=where))


# the command line's options in run's messages, and the keyword of evaluate() each one is
KEYWORDS = {"--task": "tasks=", "--language": "languages=", "--output": "output=", "--batch-size": "batch_size=",
            "--limit": "limit=", "--seed": "seed=", "--bootstrap": "bootstrap=", "--protocol": "protocol=",
            "--data-root": "data_root=", "--templates": "templates=", "--classnames": "classnames=",
            "--text-field": "text_field=", "--save-predictions": "save_predictions=True",
            "--save-queries": "save_queries=True", "--num-workers": "num_workers="}
FLAG = re.compile(r"--precision (\w+)|(--[a-z][a-z-]*)(?![a-z-])")


def api_words(message: str) -> str:
    """`message` (written for the command line) with its options named as evaluate()'s keywords."""
    def keyword(match: re.Match) -> str:
        if match.group(1):
            return f'precision="{match.group(1)}"'
        return KEYWORDS.get(match.group(2), match.group(2))
    return FLAG.sub(keyword, message)


@contextlib.contextmanager
def in_api_words() -> Iterator[None]:
    """Errors of the run's shared code, reworded for a caller of evaluate()."""
    try:
        yield
    except ClipbenchError as error:
        raise ClipbenchError(api_words(str(error)), exit_code=error.exit_code) from None


def _quiet(_line: str) -> None:
    pass


@contextlib.contextmanager
def evaluation_mode(model: torch.nn.Module) -> Iterator[None]:
    """`model` in eval mode for the block; afterwards (also after an exception) every submodule is back in the
    train/eval mode it was in, each on its own (a frozen tower stays in eval while the rest trains)."""
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for module, training in modes:
            module.training = training


def model_device(model: torch.nn.Module, requested: str | torch.device | None) -> torch.device:
    """The device of `model`'s parameters; `requested` must be that one (the model is never moved)."""
    if not isinstance(model, torch.nn.Module):
        raise ClipbenchError(f"model must be a torch.nn.Module, not {type(model).__name__}; pass the model itself")
    first = next(model.parameters(), None)
    if first is None:
        raise ClipbenchError(f"{type(model).__name__} has no parameters; pass the CLIP model itself")
    have = first.device
    if requested is None:
        return have
    try:
        wanted = torch.device(requested)
    except (RuntimeError, TypeError):
        raise ClipbenchError(f"device '{requested}' is not a torch device; pass e.g. 'cpu' or 'cuda:0'") from None
    if wanted.type != have.type or (wanted.index is not None and wanted.index != have.index):
        raise ClipbenchError(f"device {wanted} is not where the model is ({have}); move the model yourself "
                             f"(model.to('{wanted}')) or drop device= to evaluate it on {have}")
    return have


def wrap(model: torch.nn.Module, preprocess, tokenizer, processor, name: str, device: torch.device,
         step: int | None) -> Encoder:
    """`model` as an encoder of its backend: transformers with `processor`, open_clip with `preprocess` and
    `tokenizer`. Its provenance says it came from memory; it has no weights file, so no path and no sha256."""
    if processor is not None and (tokenizer is not None or preprocess is not None):
        raise ClipbenchError("pass either processor= (transformers) or preprocess= and tokenizer= (open_clip), not both")
    info = {"source": "memory", "class": type(model).__name__, "parameters": count_parameters(model)}
    if processor is not None:
        from .models import hf

        _check_methods(model, ("get_image_features", "get_text_features"), "a transformers CLIPModel-like model")
        if not (hasattr(processor, "tokenizer") and hasattr(processor, "image_processor")):
            raise ClipbenchError(f"processor ({type(processor).__name__}) has no tokenizer and image_processor; "
                                 "pass the model's transformers processor (AutoProcessor.from_pretrained)")
        encoder: Encoder = hf.encoder(name, model, processor, device, "fp32", {"backend": "transformers", **info})
    elif tokenizer is not None and preprocess is not None:
        from .models.openclip import OpenClipEncoder

        _check_methods(model, ("encode_image", "encode_text"), "an open_clip model")
        encoder = OpenClipEncoder(name, model, preprocess, tokenizer, device, "fp32", {"backend": "open_clip", **info})
    else:
        missing = "tokenizer" if preprocess is not None else "preprocess" if tokenizer is not None else "tokenizer nor processor"
        raise ClipbenchError(f"no {missing} given; pass preprocess= and tokenizer= (open_clip) or processor= "
                             "(transformers)")
    encoder.inference_mode = False  # a training process's module: see Encoder.inference_mode
    return encoder


def _check_methods(model, methods: tuple[str, ...], what: str) -> None:
    lacking = [method for method in methods if not callable(getattr(model, method, None))]
    if lacking:
        hint = " (a DistributedDataParallel wrapper: pass its .module)" if hasattr(model, "module") else ""
        raise ClipbenchError(f"{type(model).__name__} has no {'/'.join(lacking)}, so it is not {what}{hint}; "
                             "pass the CLIP model itself")


def spec_of(name: str, encoder: Encoder) -> ModelSpec:
    """The spec of the run: the name results record (no declared languages, no checkpoints)."""
    if not name:
        raise ClipbenchError("name must not be empty; pass the name results should record, e.g. name='my-run'")
    return ModelSpec(name=name, backend=encoder.info["backend"], id=f"memory:{name}")
