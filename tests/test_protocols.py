"""Protocols (DESIGN.md 2b): a paper's evaluation choices as data, by name, recorded in every result."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from benchmark.embed import build_classifier
from benchmark.errors import ClipbenchError
from benchmark.kinds.classification import task_prompts
from benchmark.models.base import Encoder
from benchmark.paths import data_dir
from benchmark.protocols import protocol_registry, resolve
from benchmark.report.table import build_table
from benchmark.results import Result
from benchmark.specs import ProtocolSpec
from benchmark.tasks import task_registry
from helpers import clipbench_here as clipbench, read_results
from test_errors import assert_clean_failure

SHARED_PT = Path(__file__).resolve().parents[2] / "shared" / "data" / "prompts" / "imagenet.pt.manual-translated.json"


# ------------------------------------------------------------------------------------------ the files

def test_bundled_protocols_load_and_name_real_tasks_and_prompts():
    registry = protocol_registry()
    assert {"clipbench", "capivara", "elevater", "clip-benchmark", "chinese-clip", "altclip"} <= set(registry)
    tasks = task_registry()
    for name, spec in registry.items():
        assert spec.name == name
        for task, own in spec.tasks.items():
            assert task in tasks, (name, task)
            for language, prompts in own.prompts.items():
                assert (data_dir("prompts") / language / f"{prompts}.json").is_file(), (name, prompts)
    assert resolve("clipbench").settings("shapes", "en") == {
        "template_averaging": "normalise-then-mean", "preprocessing": "task", "prompts": None, "tie_rule": "lower-index"}
    assert resolve("capivara").settings("imagenet1k", "pt") == {
        "template_averaging": "mean-then-normalise", "preprocessing": "model", "precision": "fp16",
        "prompts": "imagenet1k-capivara", "tie_rule": "lower-index"}
    assert resolve("capivara").settings("cifar-10", "pt")["template_averaging"] == "normalise-then-mean"


def test_unknown_protocol_name_suggests_one(tmp_path):
    done = clipbench("run", "--model", "tiny-shapes", "--task", "shapes", "--protocol", "capivarra", "-o", str(tmp_path))
    assert_clean_failure(done, 2, "Unknown protocol 'capivarra'", "Did you mean: capivara", out=tmp_path)


def test_unknown_key_in_a_protocol_file(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text('name = "mine"\ndescription = "x"\naveraging = "mean-then-normalise"\n')
    out = tmp_path / "out"
    done = clipbench("run", "--model", "tiny-shapes", "--task", "shapes", "--protocol", str(path), "-o", str(out))
    assert_clean_failure(done, 1, str(path), "field 'averaging': unknown key", out=tmp_path)
    path.write_text('name = "mine"\ndescription = "x"\n[tasks.shapes]\ntemplate_averaging = "median"\n')
    done = clipbench("run", "--model", "tiny-shapes", "--task", "shapes", "--protocol", str(path), "-o", str(out))
    assert_clean_failure(done, 1, str(path), "tasks.shapes.template_averaging", out=tmp_path)


# ------------------------------------------------------------------------------------------ template averaging

class RawTexts(Encoder):
    """Serves fixed raw (unnormalised) text features, with norms that differ from text to text."""

    def __init__(self, features: dict[str, torch.Tensor]):
        super().__init__("raw", None, torch.device("cpu"), "fp32", {})
        self.features = features

    def _texts(self, texts):
        return torch.stack([self.features[t] for t in texts])


def capivara_run_evaluation_classifier(text_embeddings: torch.Tensor, num_prompts: int) -> torch.Tensor:
    """Written from hiaac-nlp/CAPIVARA@525dec269466e79378edfedfb4ea612a41911bd9
    clip_pt/src/evaluate/zero_shot_imagenet_babel.py, run_evaluation(): the raw model.encode_text outputs,
    class-major, viewed (classes, prompts, D), averaged over prompts, then normalised."""
    text_embeddings = text_embeddings.view(len(text_embeddings) // num_prompts, num_prompts, -1)
    text_embeddings = torch.mean(text_embeddings, dim=1)
    return F.normalize(text_embeddings, dim=1)


def capivara_elevater_classifier(raw: torch.Tensor, num_prompts: int) -> torch.Tensor:
    """Written from hiaac-nlp/CAPIVARA@309470cbbac1a21769d9e641ea74bf7052188cf3
    clip_pt/src/evaluate/zero_shot_elevater.py, zero_shot_classifier(): per class, each template embedding
    normalised, averaged, and the mean divided by its norm."""
    weights = []
    for class_embeddings in raw.split(num_prompts):
        class_embedding = F.normalize(class_embeddings, dim=-1).mean(dim=0)
        class_embedding /= class_embedding.norm()
        weights.append(class_embedding)
    return torch.stack(weights)


def test_the_two_averaging_rules_equal_capivaras_code():
    from benchmark.prompts import Prompts

    generator = torch.Generator().manual_seed(0)
    prompts = Prompts([f"class{c}" for c in range(50)], [f"t{t} {{c}}" for t in range(7)], "test")
    texts = prompts.texts()
    # raw features of very different norms: the two rules then disagree on a good share of predictions
    raw = torch.randn(len(texts), 16, generator=generator) * torch.rand(len(texts), 1, generator=generator).mul(20).add(0.1)
    encoder = RawTexts(dict(zip(texts, raw)))
    ours_raw = build_classifier(encoder, prompts, batch_size=9, averaging="mean-then-normalise")
    ours_normalised = build_classifier(encoder, prompts, batch_size=9, averaging="normalise-then-mean")
    theirs_raw = capivara_run_evaluation_classifier(raw, len(prompts.templates))
    theirs_normalised = capivara_elevater_classifier(raw, len(prompts.templates))
    torch.testing.assert_close(ours_raw, theirs_raw, rtol=0, atol=1e-6)
    torch.testing.assert_close(ours_normalised, theirs_normalised, rtol=0, atol=1e-6)
    images = F.normalize(torch.randn(2000, 16, generator=generator), dim=-1)
    assert torch.equal((images @ ours_raw.T).argmax(1), (images @ theirs_raw.T).argmax(1))
    differ = ((images @ ours_raw.T).argmax(1) != (images @ ours_normalised.T).argmax(1)).float().mean()
    assert differ > 0.05  # the rules are not interchangeable on these features
    with pytest.raises(ValueError):
        build_classifier(encoder, prompts, averaging="median")


# ------------------------------------------------------------------------------------------ prompts

class FakeData:
    num_classes = 1000
    prompts = None


def test_capivara_protocol_picks_the_manual_translated_pt_texts():
    task = task_registry().get("imagenet1k")
    ours = task_prompts(task, FakeData(), "pt", resolve("capivara").settings("imagenet1k", "pt"))
    raw = json.loads((data_dir("prompts") / "pt" / "imagenet1k-capivara.json").read_text(encoding="utf-8"))
    # what zero_shot_imagenet_babel.py encodes: prompt.format(label) for label in labels for prompt in prompts
    expected = [prompt.format(label) for label in raw["classnames"] for prompt in raw["templates"]]
    assert ours.texts() == expected and len(expected) == 80_000
    assert "Arte do coleonyx mitratus  " in expected  # spaces kept as published, not stripped
    if SHARED_PT.is_file():
        shared = json.loads(SHARED_PT.read_text(encoding="utf-8"))
        assert ours.classnames == shared["classnames"] and ours.templates == shared["templates"]
    default = task_prompts(task, FakeData(), "pt", resolve("clipbench").settings("imagenet1k", "pt"))
    assert default.classnames == [c.strip() for c in ours.classnames] and default.templates != ours.templates
    # other languages keep the task's prompts
    assert resolve("capivara").settings("imagenet1k", "zh")["prompts"] is None


SHARED_ELEVATER_PT = SHARED_PT.parent / "elevater.pt.json"


def test_capivara_food_101_keeps_the_short_published_list_and_scores_as_its_script():
    """CAPIVARA's Portuguese Food-101 list has 100 names for 101 classes. Its zero_shot_elevater.py (hiaac-nlp/CAPIVARA
    @ 309470cbbac1a21769d9e641ea74bf7052188cf3) fills each template with each listed name, builds one classifier
    column per name, and compares the argmax with torchvision ImageFolder's targets (0..100): written here again."""
    task = task_registry().get("food-101")
    data = FakeData()
    data.num_classes = 101
    ours = task_prompts(task, data, "pt", resolve("capivara").settings("food-101", "pt"))
    raw = json.loads((data_dir("prompts") / "pt" / "food-101-capivara.json").read_text(encoding="utf-8"))
    assert ours.texts() == [t.format(name) for name in raw["classnames"] for t in raw["templates"]]
    assert len(ours.classnames) == 100 and "tacos" not in ours.classnames
    if SHARED_ELEVATER_PT.is_file():  # the published list, as converted into shared/
        assert ours.classnames == json.loads(SHARED_ELEVATER_PT.read_text(encoding="utf-8"))["food-101"]["classnames"]
    corrected = task_prompts(task, data, "pt", resolve("clipbench").settings("food-101", "pt"))
    assert len(corrected.classnames) == 101 and corrected.classnames[96] == "tacos"

    # scoring: 100 columns, labels 0..100; acc1 = argmax equals the target (class 100 never), acc5 = target in top 5
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(2000, 100, generator=generator)
    labels = torch.randint(0, 101, (2000,), generator=generator)
    labels[:50] = 100
    upstream_top1 = (logits.softmax(dim=-1).argmax(dim=1) == labels).double().mean().item()
    upstream_top5 = (logits.topk(5, dim=1).indices == labels.view(-1, 1)).any(dim=1).double().mean().item()
    from benchmark import metrics

    assert metrics.topk_accuracy(logits, labels, 1) == pytest.approx(upstream_top1, abs=0)
    assert metrics.topk_accuracy(logits, labels, 5) == pytest.approx(upstream_top5, abs=0)
    assert not metrics.topk_hits(logits, labels, 100)[:50].any()  # class 100 has no column: never found

    # a list longer than the class count, or short without saying so, is still refused
    data.num_classes = 99
    with pytest.raises(ClipbenchError, match="100 class names but"):
        task_prompts(task, data, "pt", resolve("capivara").settings("food-101", "pt"))


# ------------------------------------------------------------------------------------------ end to end

def run_shapes(out: Path, *extra: str) -> list[dict]:
    done = clipbench("run", "--model", "tiny-shapes", "--task", "shapes", "--limit", "40", "-j", "0", "-o", str(out), *extra)
    assert done.returncode == 0, done.stderr
    return read_results(out)


def test_results_record_the_protocol_and_tables_refuse_to_mix_them(tmp_path):
    default = run_shapes(tmp_path / "default")
    assert default[0]["protocol"] == {"name": "clipbench", "settings": {
        "template_averaging": "normalise-then-mean", "preprocessing": "task", "prompts": None, "tie_rule": "lower-index"}}
    mine = tmp_path / "raw-mean.toml"
    mine.write_text('name = "raw-mean"\ndescription = "raw template embeddings averaged"\n'
                    'template_averaging = "mean-then-normalise"\n')
    raw = run_shapes(tmp_path / "raw", "--protocol", str(mine))
    assert raw[0]["protocol"]["name"] == "raw-mean"
    assert raw[0]["protocol"]["settings"]["template_averaging"] == "mean-then-normalise"
    assert raw[0]["dataset"]["fingerprint"] == default[0]["dataset"]["fingerprint"]
    assert raw[0]["prompts"] == default[0]["prompts"]

    # two checkpoints of one group, evaluated under different protocols: not one cell
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    for name, payload in (("a", default[0]), ("b", raw[0])):
        payload["model"]["checkpoint_name"] = name
        (mixed / f"{name}.json").write_text(json.dumps(payload))
    results = [Result.from_disk(p) for p in sorted(mixed.glob("*.json"))]
    with pytest.raises(ClipbenchError, match=r"protocol differ \(a \(seed 0\): clipbench, b \(seed 0\): raw-mean\)"):
        build_table(results)
    assert build_table(results, force=True).frame.shape[0] == 1
    refused = clipbench("table", str(mixed))
    assert_clean_failure(refused, 1, "protocol differ", "--force")
    assert clipbench("table", str(mixed), "--force").returncode == 0


def test_list_protocols_shows_source_and_changes():
    done = clipbench("list", "protocols")
    assert done.returncode == 0, done.stderr
    capivara = next(line for line in done.stdout.splitlines() if line.startswith("| capivara "))
    assert "hiaac-nlp/CAPIVARA@375bc33" in capivara and "mean-then-normalise" in capivara
    assert "imagenet1k: template_averaging mean-then-normalise, precision fp16" in capivara
    assert "imagenet1k-capivara" in capivara


def test_a_protocol_setting_for_an_unknown_task_is_refused(tmp_path):
    path = tmp_path / "typo.toml"
    path.write_text('name = "typo"\ndescription = "x"\n[tasks.imagenet-1k]\ntemplate_averaging = "mean-then-normalise"\n')
    done = clipbench("run", "--model", "tiny-shapes", "--task", "shapes", "--protocol", str(path), "-o", str(tmp_path / "o"))
    assert_clean_failure(done, 1, str(path), "tasks.imagenet-1k", "Did you mean: imagenet1k", out=tmp_path)


def test_a_result_of_another_protocol_is_not_overwritten(tmp_path):
    """It gets its own file (`.protocol-<name>` ends its name); the default protocol's result stays as it was."""
    out = tmp_path / "out"
    first = run_shapes(out)
    mine = tmp_path / "raw-mean.toml"
    mine.write_text('name = "raw-mean"\ndescription = "x"\ntemplate_averaging = "mean-then-normalise"\n')
    done = clipbench("run", "--model", "tiny-shapes", "--task", "shapes", "--limit", "40", "-j", "0", "-o", str(out),
                     "--protocol", str(mine))
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in out.rglob("*.json")) == \
        [f"shapes.{lang}.limit40.seed0{tail}.json" for lang in ("en", "pt", "zh") for tail in ("", ".protocol-raw-mean")]
    assert [r for r in read_results(out) if r["protocol"]["name"] == "clipbench"] == first


def test_altclip_is_an_alias_of_clip_benchmark(tmp_path):
    assert resolve("altclip") == resolve("clip-benchmark")
    # its fp16 autocast needs a GPU: on this CPU the run says so unless --precision is given (test_protocol_settings)
    results = run_shapes(tmp_path / "out", "--protocol", "altclip", "--precision", "fp32")
    assert results[0]["protocol"]["name"] == "clip-benchmark"
    assert results[0]["protocol"]["settings"]["preprocessing"] == "model"
    assert (results[0]["protocol"]["settings"]["precision"], results[0]["run"]["precision"]) == ("fp16", "fp32")
    # the same command again is not refused (its result is kept: same provenance): the alias records its target's name
    again = run_shapes(tmp_path / "out", "--protocol", "altclip", "--precision", "fp32")
    assert again[0]["protocol"]["name"] == "clip-benchmark"
    assert sorted(p.name for p in (tmp_path / "out").rglob("*.json")) == \
        [f"shapes.{lang}.limit40.seed0.protocol-clip-benchmark.json" for lang in ("en", "pt", "zh")]
    path = tmp_path / "bad-alias.toml"
    path.write_text('name = "bad-alias"\ndescription = "x"\nalias_of = "clip-benchmark"\npreprocessing = "square"\n')
    done = clipbench("run", "--model", "tiny-shapes", "--task", "shapes", "--protocol", str(path), "-o", str(tmp_path / "o"))
    assert_clean_failure(done, 1, str(path), "alias", "remove preprocessing")


@pytest.mark.parametrize("protocol, averaging, crop", [
    ("clipbench", "normalise-then-mean", False),  # the task file squashes KITTI-Distance (ELEVATER)
    ("capivara", "normalise-then-mean", True),  # CAPIVARA's zero_shot_elevater.py: the model's own crop, KITTI included
    ("chinese-clip", "normalise-then-mean", False),  # every image squashed to a square
])
def test_classification_applies_the_protocol(protocol, averaging, crop):
    from benchmark.embed import Embedded
    from benchmark.kinds import classification

    task = task_registry().get("kitti-distance")
    seen = {}

    class Cache:
        def classifier(self, encoder, prompts, batch_size, averaging):
            seen["averaging"] = averaging
            return Embedded(torch.eye(len(prompts.classnames), 4))

        def images(self, encoder, source, batch_size, num_workers, center_crop):
            seen["center_crop"] = center_crop
            return Embedded(torch.eye(3, 4))

    class Data:
        num_classes = task.num_classes or 4
        prompts = None
        labels = [0, 1, 2]
        images = [None] * 3

    classification.score(task, Data(), None, Cache(), "en", 8, 0, resolve(protocol).settings(task.name, "en"))
    assert seen == {"averaging": averaging, "center_crop": crop}
    raw_mean = ProtocolSpec(name="raw-mean", description="x", template_averaging="mean-then-normalise")
    classification.score(task, Data(), None, Cache(), "en", 8, 0, raw_mean.settings(task.name, "en"))
    assert seen == {"averaging": "mean-then-normalise", "center_crop": False}
