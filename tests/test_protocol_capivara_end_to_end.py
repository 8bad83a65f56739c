"""End to end: `clipbench run --model capivara --task imagenet1k --language pt --protocol capivara` on a 1,000-class
ImageNet-layout folder, through the real command line and the capivara stand-in (tests/standins.py: a tiny random
open_clip ViT + XLM-R in the hub layout). Its saved predictions are checked against CAPIVARA's rule, written again
here from hiaac-nlp/CAPIVARA@525dec269466e79378edfedfb4ea612a41911bd9 clip_pt/src/evaluate/zero_shot_imagenet_babel.py
(run with --languages MANUAL-TRANSLATED-PT): each label's prompts `prompt.format(label)` encoded with the raw
model.encode_text, averaged, then normalised; images through the model's own preprocessing; logits = 100 x cosine."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

import standins
from benchmark.models.catalog import model_registry
from helpers import clipbench_here as clipbench

ROOT = Path(__file__).resolve().parents[1]

REFERENCE = r'''
import json, sys
from pathlib import Path
import torch
from PIL import Image
from benchmark import models
from benchmark.models.catalog import model_registry

root, prompt_file, out = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
raw = json.loads(prompt_file.read_text(encoding="utf-8"))
encoder = models.load(model_registry().get("capivara"), torch.device("cpu"), "fp32")
weights = []
for label in raw["classnames"]:
    features = encoder.encode_texts([prompt.format(label) for prompt in raw["templates"]], normalise=False)
    mean = features.mean(dim=0)
    weights.append(mean / mean.norm())
classifier = torch.stack(weights, dim=1)
folders = sorted((root / "imagenet1k" / "val").iterdir())
pixels = torch.stack([encoder.preprocess(Image.open(next(f.iterdir())).convert("RGB")) for f in folders])
images = encoder.encode_images(pixels)
logits = 100.0 * images @ classifier
out.write_text(json.dumps({"top1": logits.argmax(dim=1).tolist(), "logits": logits.tolist()}))
'''


def test_capivara_imagenet_pt_ranks_as_capivaras_script(tmp_path):
    cache = tmp_path / "hub"
    standins.build(cache, "capivara", model_registry().get("capivara").id)
    data = tmp_path / "data"
    rng = np.random.default_rng(0)
    for index in range(1000):  # sorted folder names = class order, as ImageNet's wnids
        folder = data / "imagenet1k" / "val" / f"n{index:08d}"
        folder.mkdir(parents=True)
        Image.fromarray(rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)).save(folder / "0.png")
    env = {"HF_HUB_CACHE": str(cache)}

    out = tmp_path / "out"
    # CAPIVARA's script autocasts to fp16 on its GPU; this CPU run asks for fp32, as the reference below computes
    done = clipbench("run", "--model", "capivara", "--task", "imagenet1k", "--language", "pt", "--protocol", "capivara",
                     "--precision", "fp32", "--save-predictions", "--num-workers", "0", "--data-root", str(data),
                     "--output", str(out), env=env)
    assert done.returncode == 0, done.stderr
    [result_file] = out.rglob("*.json")
    assert result_file.name == "imagenet1k.pt.protocol-capivara.json"
    result = json.loads(result_file.read_text(encoding="utf-8"))
    assert result["protocol"]["name"] == "capivara"
    assert result["protocol"]["settings"]["template_averaging"] == "mean-then-normalise"
    assert (result["protocol"]["settings"]["precision"], result["run"]["precision"]) == ("fp16", "fp32")
    lines = [json.loads(line) for line in result_file.with_suffix(".predictions.jsonl").read_text().splitlines()]
    assert len(lines) == 1000 and [line["label"] for line in lines] == list(range(1000))

    reference_file = tmp_path / "reference.json"
    full_env = {**__import__("os").environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", **env,
                "PYTHONPATH": str(ROOT)}
    subprocess.run([sys.executable, "-c", REFERENCE, str(data), str(ROOT / "prompts" / "pt" / "imagenet1k-capivara.json"),
                    str(reference_file)], check=True, env=full_env, timeout=900)
    reference = json.loads(reference_file.read_text())
    logits = np.array(reference["logits"], dtype=np.float32)

    ours_top1 = [line["top5"][0] for line in lines]
    assert ours_top1 == reference["top1"]
    for line, row in zip(lines, logits):
        np.testing.assert_allclose(line["top5_scores"], row[line["top5"]], rtol=0, atol=1e-4)
    assert result["metrics"]["acc1"] == np.mean(np.array(reference["top1"]) == np.arange(1000))
    assert result["prompts"]["origin"].endswith("imagenet1k-capivara.json")

    # not vacuous: the tiny random model puts most images in one class, so the scores carry the check; under the
    # default protocol (key-PT templates, each template normalised before the mean) they differ from CAPIVARA's
    other = tmp_path / "other"
    done = clipbench("run", "--model", "capivara", "--task", "imagenet1k", "--language", "pt", "--save-predictions",
                     "--num-workers", "0", "--data-root", str(data), "--output", str(other), env=env)
    assert done.returncode == 0, done.stderr
    [default_file] = other.rglob("*.json")
    default = [json.loads(line) for line in default_file.with_suffix(".predictions.jsonl").read_text().splitlines()]
    gaps = [np.abs(np.array(line["top5_scores"]) - row[line["top5"]]).max() for line, row in zip(default, logits)]
    assert max(gaps) > 1e-2
