"""Every registered model loads through its real code path (open_clip's hf-hub:, transformers'
from_pretrained, the hub cache) from a tiny stand-in, runs a task, and embeds exactly as its model
card's own recipe does."""

import json
import os
import subprocess
import sys

import pytest

import standins
from benchmark.models.catalog import model_registry
from helpers import clipbench_here as clipbench, read_results

REGISTERED = model_registry().names()
HUB_MODELS = [name for name in REGISTERED if name != "tiny-shapes"]


@pytest.fixture(scope="module")
def hub_cache(tmp_path_factory):
    cache = tmp_path_factory.mktemp("hf") / "hub"
    commits = {name: standins.build(cache, name, model_registry().get(name).id) for name in HUB_MODELS}
    return cache, commits


@pytest.mark.parametrize("name", REGISTERED)
def test_every_registered_model_runs_a_task(name, hub_cache, tmp_path):
    cache, commits = hub_cache
    spec = model_registry().get(name)
    language = spec.languages[0]
    out = tmp_path / "out"
    done = clipbench("run", "--model", name, "--task", "shapes", "--language", language, "--output", str(out),
                     "--num-workers", "0", env={"HF_HUB_CACHE": str(cache)})
    assert done.returncode == 0, done.stderr
    [result] = read_results(out)
    assert result["model"]["name"] == name and result["model"]["backend"] == spec.backend
    assert result["model"]["checkpoint_sha256"]
    if name in commits:
        assert result["model"]["revision"] == commits[name]  # the commit actually loaded is recorded
    assert 0.0 <= result["metrics"]["acc1"] <= 1.0


CARD_RECIPE = r'''
import json, sys
import numpy as np, torch, torch.nn.functional as F
from benchmark import models
from benchmark.data import shapes

name, backend, model_id = sys.argv[1:4]
images = [img for img, _ in shapes.classification_samples(4, seed=11)]
texts = ["a photo of a red circle.", "uma foto de um círculo vermelho.", "一张红色圆形的照片。"]
encoder = models.load(models.resolve(name), torch.device("cpu"), "fp32")
ours_i = encoder.encode_images(torch.stack([encoder.preprocess(im) for im in images]))
ours_t = encoder.encode_texts(texts)
with torch.no_grad():
    if backend == "open_clip":  # the model card: open_clip.create_model_and_transforms('hf-hub:...')
        import open_clip
        model, _, preprocess = open_clip.create_model_and_transforms(model_id)
        tokenizer = open_clip.get_tokenizer(model_id)
        model.eval()
        ref_i = model.encode_image(torch.stack([preprocess(im) for im in images]))
        ref_t = model.encode_text(tokenizer(texts))
    else:  # the model card: Model.from_pretrained + Processor.from_pretrained, get_*_features
        from transformers import AutoModel, AutoProcessor
        model = AutoModel.from_pretrained(model_id).eval()
        processor = AutoProcessor.from_pretrained(model_id)
        # SigLIP's card pads to the full length ("important: we pass padding=max_length"); CLIP's to the longest
        siglip = model.config.model_type == "siglip"
        inputs = processor(text=texts, images=images, return_tensors="pt", padding="max_length" if siglip else True,
                           **({"truncation": True} if siglip else {}))
        out_i = model.get_image_features(pixel_values=inputs["pixel_values"])
        out_t = model.get_text_features(**{k: inputs[k] for k in ("input_ids", "attention_mask") if k in inputs})
        ref_i = out_i if isinstance(out_i, torch.Tensor) else out_i.pooler_output
        ref_t = out_t if isinstance(out_t, torch.Tensor) else out_t.pooler_output
ref_i, ref_t = F.normalize(ref_i, dim=-1), F.normalize(ref_t, dim=-1)
print(json.dumps({"image": (ours_i - ref_i).abs().max().item(), "text": [(ours_t[k] - ref_t[k]).abs().max().item() for k in range(3)],
                  "model": type(getattr(encoder, "model", None)).__name__, "distinct": (ours_t[0] - ours_t[1]).abs().max().item()}))
'''


@pytest.mark.parametrize("name", HUB_MODELS)
def test_embeddings_equal_the_model_card_recipe(name, hub_cache):
    cache, _ = hub_cache
    spec = model_registry().get(name)
    env = {**os.environ, "HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-c", CARD_RECIPE, name, spec.backend, spec.id],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    diffs = json.loads(done.stdout.strip().splitlines()[-1])
    assert diffs["image"] < 1e-5
    assert max(diffs["text"]) < 1e-5  # en, pt and zh
    assert diffs["distinct"] > 1e-4  # the texts really differ, so the check can fail
    if name == "altclip":
        assert diffs["model"] == "AltCLIPModel"


def test_list_models_shows_parameters_of_cached_models(hub_cache):
    cache, _ = hub_cache
    done = clipbench("list", "models", env={"HF_HUB_CACHE": str(cache)})
    assert done.returncode == 0, done.stderr
    rows = {line.split("|")[1].strip(): line for line in done.stdout.splitlines()[2:]}
    assert set(rows) == set(REGISTERED)
    assert "not cached" not in rows["altclip"] and "CreativeML OpenRAIL-M" in rows["altclip"]


@pytest.mark.parametrize("name", ["capivara", "altclip"])
def test_offline_without_cache_is_one_clear_line(name, tmp_path):
    done = clipbench("run", "--model", name, "--task", "shapes", "--language", model_registry().get(name).languages[0],
                     "--output", str(tmp_path / "out"), env={"HF_HUB_CACHE": str(tmp_path / "empty")})
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert lines[-1].startswith("error: could not fetch") and "HF_HOME" in lines[-1], done.stderr
    assert "Traceback" not in done.stderr


def test_registered_parameter_counts_are_those_of_the_architectures():
    """The counts `list models` shows before any weights are cached come from building each architecture (on
    the meta device, from its hub configuration) and counting; the bundled model is counted from its file."""
    from benchmark.dev import sizes

    counted = sizes.registered()
    assert set(counted) == set(HUB_MODELS)
    for name in HUB_MODELS:
        assert model_registry().get(name).parameters == counted[name], name
    # published sizes of two well-known architectures, as a check on the counting itself
    assert counted["openai-vit-b32"] == 151_277_313 and counted["openclip-vit-b16-laion2b"] == 149_620_737
    done = clipbench("list", "models", env={"HF_HUB_CACHE": "/nonexistent"})
    assert done.returncode == 0 and "unknown" not in done.stdout and "| 864.2M " in done.stdout, done.stdout
