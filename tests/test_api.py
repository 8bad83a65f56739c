"""clipbench.evaluate: the benchmark of a model held in memory, from a training loop, on the path `clipbench run`
takes. The bundled tiny-shapes model, loaded with open_clip in this process, and a tiny transformers CLIPModel."""

from pathlib import Path

import open_clip
import pytest
import torch

import clipbench
from benchmark.cli import run_app
from benchmark.paths import weights_dir
from benchmark.results import read_all
from helpers import write_tiny_hf_clip

TINY = f"local-dir:{weights_dir('tiny-shapes')}"
SMALL = ["--limit", "40", "--seed", "3", "--bootstrap", "10", "--num-workers", "0", "--no-cache"]


@pytest.fixture()
def tiny():
    model, _, preprocess = open_clip.create_model_and_transforms(TINY)
    return model, preprocess, open_clip.get_tokenizer(TINY)


def _cli(tmp_path: Path, *args: str) -> dict:
    out = tmp_path / "cli"
    assert run_app(["run", *args, *SMALL, "--output", str(out)]) == 0
    return {(r.task, r.language): r for r in read_all([out])}


def test_numbers_equal_those_of_clipbench_run(tiny, tmp_path):
    cli = _cli(tmp_path, "--model", "tiny-shapes", "--task", "shapes", "--task", "shapes-captions",
               "--language", "en", "--language", "zh")
    model, preprocess, tokenizer = tiny
    results = clipbench.evaluate(model, preprocess, tokenizer, tasks=["shapes", "shapes-captions"],
                                 languages=["en", "zh"], limit=40, seed=3, bootstrap=10, num_workers=0)
    assert sorted((r.task, r.language) for r in results) == sorted(cli)
    for result in results:
        ran = cli[(result.task, result.language)]
        assert result.metrics == ran.metrics and result.bootstrap == ran.bootstrap
        assert result.dataset.fingerprint == ran.dataset.fingerprint and result.prompts == ran.prompts
        assert result.limit == ran.limit and result.seed == ran.seed == 3
    record = results[0].payload()["model"]
    assert record == {"name": "in-memory", "group": "in-memory", "checkpoint_name": None, "backend": "open_clip",
                      "source": "memory", "class": "CLIP", "parameters": ran.model.parameters}
    assert results[0].run.image_embeddings_from_disk is None  # the disk cache is off


def test_a_transformers_model_with_its_processor(tmp_path):
    from transformers import CLIPModel, CLIPProcessor

    folder = write_tiny_hf_clip(tmp_path / "tiny-clip")
    cli = _cli(tmp_path, "--model", f"hf:{folder}", "--task", "shapes-captions")
    model, processor = CLIPModel.from_pretrained(folder), CLIPProcessor.from_pretrained(folder)
    [result] = clipbench.evaluate(model, processor=processor, tasks="shapes-captions", name="hf-tiny", step=7,
                                  limit=40, seed=3, bootstrap=10, num_workers=0)
    assert result.metrics == cli[("shapes-captions", "en")].metrics
    assert (result.model.name, result.group, result.model.step) == ("hf-tiny", "hf-tiny@step-7", 7)
    assert result.model.model_extra["backend"] == "transformers"


def test_train_mode_is_restored_and_training_goes_on(tiny):
    model, preprocess, tokenizer = tiny
    model.train()
    model.visual.eval()  # a frozen tower stays in eval mode while the rest trains
    before = {name: module.training for name, module in model.named_modules()}
    seen = []
    model.visual.register_forward_pre_hook(lambda module, _: seen.append(model.training or module.training))
    clipbench.evaluate(model, preprocess, tokenizer, tasks="shapes", limit=8, num_workers=0)
    assert seen and not any(seen)  # evaluated in eval mode
    assert {name: module.training for name, module in model.named_modules()} == before
    assert all(p.grad is None for p in model.parameters())


class Caching(torch.nn.Module):
    """A CLIP model that makes a tensor on its first forward and keeps it (as rotary-embedding caches do)."""

    def __init__(self, clip):
        super().__init__()
        self.clip, self.scale = clip, None

    def encode_image(self, pixels):
        if self.scale is None:
            self.scale = torch.ones(self.clip.visual.output_dim)
        return self.clip.encode_image(pixels) * self.scale

    def encode_text(self, tokens):
        return self.clip.encode_text(tokens)


def test_training_goes_on_with_what_the_model_cached_during_evaluation(tiny):
    """Under torch.inference_mode the kept tensor would be an inference tensor, which backward cannot use."""
    clip, preprocess, tokenizer = tiny
    model = Caching(clip).train()
    clipbench.evaluate(model, preprocess, tokenizer, tasks="shapes", limit=8, num_workers=0)
    model.encode_image(torch.zeros(2, 3, *clip.visual.image_size)).sum().backward()
    assert clip.visual.proj.grad is not None


def test_train_mode_is_restored_after_an_exception(tiny):
    model, preprocess, _ = tiny
    model.train()

    def broken(texts):
        raise RuntimeError("tokenizer broke")

    with pytest.raises(RuntimeError, match="tokenizer broke"):
        clipbench.evaluate(model, preprocess, broken, tasks="shapes", limit=8, num_workers=0)
    assert all(module.training for module in model.modules())


def test_nothing_is_written_without_output(tiny, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("CLIPBENCH_CACHE", str(cache))
    monkeypatch.chdir(tmp_path)
    clipbench.evaluate(*tiny, tasks="shapes", limit=8, num_workers=0)
    assert list(tmp_path.iterdir()) == []


def test_changed_weights_give_new_numbers(tiny):
    """No embeddings are kept between calls: the second call sees the weights the optimiser changed."""
    model, preprocess, tokenizer = tiny
    first = clipbench.evaluate(model, preprocess, tokenizer, tasks="shapes-captions", limit=40, num_workers=0)
    with torch.no_grad():
        model.visual.proj.mul_(torch.randn_like(model.visual.proj))
    second = clipbench.evaluate(model, preprocess, tokenizer, tasks="shapes-captions", limit=40, num_workers=0)
    assert first[0].metrics != second[0].metrics


def test_steps_write_their_own_files_that_table_reads(tiny, tmp_path, capsys):
    out = tmp_path / "runs"
    for step in (100, 200, 200):  # the same step again replaces its own file
        clipbench.evaluate(*tiny, tasks="shapes", limit=8, num_workers=0, output=out, name="run-a", step=step)
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.json"))
    assert files == ["run-a_step-100/shapes.en.limit8.seed0.json", "run-a_step-200/shapes.en.limit8.seed0.json"]
    assert sorted(r.model.step for r in read_all([out])) == [100, 200]
    capsys.readouterr()
    assert run_app(["table", str(out)]) == 0
    table = capsys.readouterr().out
    assert "| run-a@step-100 " in table and "| run-a@step-200 " in table


def test_saved_queries_of_two_steps_compare_paired(tiny, tmp_path, capsys):
    """A training loop's steps, saved with their per-query outcomes, go to `clipbench compare --paired`."""
    out = tmp_path / "runs"
    model = tiny[0]
    first = clipbench.evaluate(*tiny, tasks="shapes", limit=40, num_workers=0, output=out, step=1, save_queries=True)
    with torch.no_grad():
        model.visual.proj.mul_(torch.randn_like(model.visual.proj))
    clipbench.evaluate(*tiny, tasks="shapes", limit=40, num_workers=0, output=out, step=2, save_queries=True,
                       save_predictions=True)
    assert len(list(out.rglob("*.queries.npz"))) == 2 and len(list(out.rglob("*.predictions.jsonl"))) == 1
    capsys.readouterr()
    assert run_app(["compare", str(out / "in-memory_step-1"), str(out / "in-memory_step-2"), "--paired",
                    "--draws", "200"]) == 0
    shown = capsys.readouterr().out
    assert "acc1" in shown and f"{100 * first[0].metrics['acc1']:.2f}" in shown


def test_templates_file_overrides_the_prompts(tiny, tmp_path):
    own = tmp_path / "templates.txt"
    own.write_text("a drawing of {c}.\n")
    [plain] = clipbench.evaluate(*tiny, tasks="shapes", limit=40, num_workers=0)
    [custom] = clipbench.evaluate(*tiny, tasks="shapes", limit=40, num_workers=0, templates=own)
    assert custom.prompts != plain.prompts and str(own) in str(custom.payload())


@pytest.mark.parametrize("arguments, message", [
    ({"tasks": "no-such-task"}, "no-such-task"),
    ({"tasks": "shapes", "save_queries": True}, "save_queries=True writes files beside the results; pass output="),
    ({"tasks": "shapes", "tokenizer": None}, "no tokenizer given; pass preprocess= and tokenizer="),
    ({"tasks": "shapes", "preprocess": None, "tokenizer": None}, "no tokenizer nor processor given"),
    ({"tasks": "shapes", "device": "cuda"}, "device cuda is not where the model is (cpu)"),
    ({"tasks": "shapes", "limit": 0}, "limit= must be at least 1"),  # the command line's message, in API words
    ({"tasks": "shapes", "languages": "de"}, "drop that languages= or that task"),
])
def test_bad_input_is_a_one_line_error(tiny, arguments, message):
    model, preprocess, tokenizer = tiny
    given = {"preprocess": preprocess, "tokenizer": tokenizer, "num_workers": 0, **arguments}
    with pytest.raises(clipbench.ClipbenchError) as raised:
        clipbench.evaluate(model, **given)
    assert message in str(raised.value) and "\n" not in str(raised.value) and "--" not in str(raised.value)


def test_a_module_that_is_not_clip_is_refused(tiny):
    _, preprocess, tokenizer = tiny
    with pytest.raises(clipbench.ClipbenchError, match="Linear has no encode_image/encode_text, so it is not an open_clip model"):
        clipbench.evaluate(torch.nn.Linear(2, 2), preprocess, tokenizer, tasks="shapes")
