"""The procedural shapes data is deterministic and the bundled tiny-shapes model loads through open_clip."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from benchmark.data import shapes

ROOT = Path(__file__).resolve().parent.parent
MODEL_DIR = ROOT / "benchmark" / "weights" / "tiny-shapes"
PROMPTS = ROOT / "prompts"


def _pixels(samples):
    return [np.asarray(im).tobytes() for im, _ in samples]


def test_class_keys():
    assert len(shapes.CLASS_KEYS) == 16
    assert len(set(shapes.CLASS_KEYS)) == 16
    assert {s for s, _ in shapes.CLASS_KEYS} == {"circle", "square", "triangle", "star"}
    assert {c for _, c in shapes.CLASS_KEYS} == {"red", "green", "blue", "yellow"}


def test_classification_samples_deterministic():
    a = shapes.classification_samples(20, seed=11)
    b = shapes.classification_samples(20, seed=11)
    c = shapes.classification_samples(20, seed=12)
    assert _pixels(a) == _pixels(b)
    assert [y for _, y in a] == [y for _, y in b]
    assert _pixels(a) != _pixels(c)
    for im, y in a:
        assert im.mode == "RGB" and im.size == (80, 80)
        assert 0 <= y < 16
    # balanced classes
    labels = [y for _, y in shapes.classification_samples(32, seed=5)]
    assert sorted(labels) == sorted(list(range(16)) * 2)


def test_caption_samples_deterministic():
    a = shapes.caption_samples(10, seed=3)
    b = shapes.caption_samples(10, seed=3)
    assert _pixels(a) == _pixels(b)
    assert [c for _, c in a] == [c for _, c in b]
    for _, caps in a:
        assert set(caps) == {"en", "pt", "zh"}
        for lang, pair in caps.items():
            assert len(pair) == 2 and pair[0] != pair[1] and all(pair)


def test_draw_uses_only_the_given_generator():
    im1, at1 = shapes.draw(np.random.default_rng(99))
    np.random.seed(0)  # global state must not matter
    im2, at2 = shapes.draw(np.random.default_rng(99))
    assert at1 == at2 and np.array_equal(np.asarray(im1), np.asarray(im2))
    assert set(at1) >= {"shape", "colour", "size", "position", "label"}
    assert shapes.CLASS_KEYS[at1["label"]] == (at1["shape"], at1["colour"])


def test_captions_grammar():
    star = {"shape": "star", "colour": "red", "size": "small", "position": "center"}
    circle = {"shape": "circle", "colour": "red", "size": "large", "position": "top left"}
    assert shapes.captions(circle)["en"][0] == "a large red circle in the top left corner."
    assert shapes.captions(circle)["pt"][0].startswith("um círculo vermelho grande no canto superior esquerdo")
    assert shapes.captions(star)["pt"][0].startswith("uma estrela vermelha pequena no centro")
    assert shapes.captions(circle)["zh"][0] == "左上角有一个大的红色圆形"
    assert shapes.captions({**star, "colour": "yellow"})["zh"][1] == "一个小的黄色星形，位于中间"


@pytest.mark.parametrize("lang", ["en", "pt", "zh"])
def test_prompt_files_match_classes(lang):
    data = json.loads((PROMPTS / lang / "shapes.json").read_text(encoding="utf-8"))
    assert data["task"] == "shapes" and data["language"] == lang
    assert data["classnames"] == shapes.class_names(lang)
    assert 3 <= len(data["templates"]) <= 5
    assert all("{c}" in t for t in data["templates"])


# ---------------------------------------------------------------------------------------------
# the bundled model directory
# ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def loaded(request):
    open_clip = pytest.importorskip("open_clip")
    mp = pytest.MonkeyPatch()
    mp.setenv("HF_HUB_OFFLINE", "1")
    mp.setenv("TRANSFORMERS_OFFLINE", "1")
    request.addfinalizer(mp.undo)
    model, _, preprocess = open_clip.create_model_and_transforms(f"local-dir:{MODEL_DIR}")
    tokenizer = open_clip.get_tokenizer(f"local-dir:{MODEL_DIR}")
    model.eval()
    return model, preprocess, tokenizer


def test_model_dir_files():
    names = {p.name for p in MODEL_DIR.iterdir()}
    assert {"open_clip_config.json", "open_clip_model.safetensors", "tokenizer.json", "tokenizer_config.json"} <= names
    assert sum(p.stat().st_size for p in MODEL_DIR.iterdir() if p.is_file()) <= 5_000_000
    cfg = json.loads((MODEL_DIR / "open_clip_config.json").read_text(encoding="utf-8"))
    assert set(cfg) >= {"model_cfg", "preprocess_cfg"}
    assert cfg["model_cfg"]["text_cfg"]["hf_tokenizer_name"]


def test_weights_are_loaded(loaded):
    from safetensors.torch import load_file

    model, _, _ = loaded
    saved = load_file(str(MODEL_DIR / "open_clip_model.safetensors"))
    state = model.state_dict()
    assert set(saved) == set(state)
    for k in ("visual.conv1.weight", "token_embedding.weight", "logit_scale"):
        assert (state[k].float() == saved[k].float()).all(), k


def test_tokenizer(loaded):
    from benchmark.dev.train_tiny import all_texts

    model, _, tokenizer = loaded
    texts = all_texts()
    ids = tokenizer(texts)
    assert ids.shape == (len(texts), model.context_length)
    assert (ids[:, 0] == 3).all()  # [BOS]
    assert ((ids == 2).sum(1) == 1).all()  # exactly one [EOS]
    assert not (ids == 1).any()  # no [UNK] in any prompt or caption
    zh = tokenizer(["左上角有一个大的红色圆形"])[0]
    assert int((zh != 0).sum()) == 12 + 2  # one token per Chinese character


def test_zero_shot_smoke(loaded):
    import torch

    from benchmark.dev.train_tiny import zero_shot_classifier

    model, preprocess, tokenizer = loaded
    samples = shapes.classification_samples(48, seed=1234)
    x = torch.stack([preprocess(im) for im, _ in samples])
    assert x.shape == (48, 3, 64, 64)
    y = torch.tensor([label for _, label in samples])
    with torch.no_grad():
        feats = model.encode_image(x, normalize=True)
        for lang in ("en", "pt", "zh"):
            acc = ((feats @ zero_shot_classifier(model, tokenizer, lang).T).argmax(1) == y).float().mean().item()
            assert acc >= 0.75, (lang, acc)


def test_training_is_deterministic(tmp_path):
    """Two short trainings with the same seed write byte-identical weights; another seed does not. (In a
    subprocess: training switches torch to deterministic algorithms for the whole process.)"""
    import hashlib
    import subprocess
    import sys

    script = ("import sys; from pathlib import Path; from benchmark.dev.train_tiny import train\n"
              "for name, seed in (('a', 1), ('b', 1), ('c', 2)):\n"
              "    train(Path(sys.argv[1]) / name, steps=4, batch_size=16, pool_size=64, seed=seed)\n")
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path)], cwd=ROOT, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr
    digest = {name: hashlib.sha256((tmp_path / name / "open_clip_model.safetensors").read_bytes()).hexdigest()
              for name in "abc"}
    assert digest["a"] == digest["b"] and digest["a"] != digest["c"]
    assert (tmp_path / "a" / "tokenizer.json").read_bytes() == (tmp_path / "b" / "tokenizer.json").read_bytes()
