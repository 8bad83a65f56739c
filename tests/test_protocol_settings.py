"""The protocol-level settings of issue 10: Chinese-CLIP's bicubic square resize, each paper's precision, which
caption translation CAPIVARA's webdatasets give per language, and result file names that carry the protocol."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import standins
from benchmark import models
from benchmark.errors import ClipbenchError
from benchmark.protocols import resolve
from benchmark.result_names import result_name
from benchmark.results import Result
from benchmark.run import RunOptions, job_precision, result_file, result_path
from benchmark.specs import ProtocolSpec
from helpers import clipbench_here as clipbench, read_results, write_tiny_hf_clip
from test_errors import assert_clean_failure

OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)


# ------------------------------------------------------------------------------------------ square resize

def photo() -> Image.Image:
    """A real photograph (scikit-learn's china.jpg, 640 x 427): JPEG-decoded, not square."""
    import sklearn.datasets

    image = Image.open(Path(sklearn.datasets.__file__).parent / "images" / "china.jpg")
    image.load()
    return image


def chinese_clip_image_transform(image_size: int):
    """Written from OFA-Sys/Chinese-CLIP @ 31863c707501bf1605d36842f43deb78793dbc5d, cn_clip/clip/utils.py
    image_transform(): Resize((image_size, image_size), BICUBIC), _convert_to_rgb, ToTensor, Normalize with
    OpenAI's mean and std."""
    from torchvision.transforms import Compose, InterpolationMode, Normalize, Resize, ToTensor

    def _convert_to_rgb(image):
        return image.convert("RGB")

    return Compose([
        Resize((image_size, image_size), interpolation=InterpolationMode.BICUBIC),
        _convert_to_rgb,
        ToTensor(),
        Normalize((0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)),
    ])


@pytest.fixture(scope="module")
def encoders(tmp_path_factory):
    """An open_clip stand-in (32 px, OpenAI mean/std) and a transformers CLIP stand-in (the same)."""
    root = tmp_path_factory.mktemp("square")
    standins.open_clip_vit(root / "hub", "org/tiny")
    [folder] = list((root / "hub").glob("models--org--tiny/snapshots/*"))
    open_clip_encoder = models.load(models.resolve(f"local-dir:{folder}"), torch.device("cpu"), "fp32")
    hf_encoder = models.load(models.resolve(f"hf:{write_tiny_hf_clip(root / 'hf')}"), torch.device("cpu"), "fp32")
    return {"open_clip": open_clip_encoder, "transformers": hf_encoder}


@pytest.mark.parametrize("backend", ["open_clip", "transformers"])
def test_chinese_clip_square_is_upstreams_image_transform(encoders, backend):
    encoder = encoders[backend]
    assert encoder.input_geometry() == ((32, 32), OPENAI_MEAN, OPENAI_STD)
    settings = resolve("chinese-clip").settings("imagenet1k", "zh")
    assert (settings["preprocessing"], settings["interpolation"]) == ("square", "bicubic")
    square = encoder.configured(interpolation=settings["interpolation"]).transform(center_crop=False)
    upstream = chinese_clip_image_transform(32)
    image = photo()
    assert image.mode == "RGB" and image.size == (640, 427)
    assert torch.equal(square(image), upstream(image))
    # upstream resizes before converting to RGB: a palette image is resized as such (PIL: nearest), then converted
    palette = image.convert("P")
    assert torch.equal(square(palette), upstream(palette))
    assert not torch.equal(square(palette), upstream(palette.convert("RGB")))


def test_bicubic_whatever_the_models_own_interpolation(encoders, monkeypatch):
    """A model whose own resize is bilinear: its squash differs from Chinese-CLIP's, the protocol's does not."""
    encoder = encoders["open_clip"]
    monkeypatch.setitem(encoder.model.visual.preprocess_cfg, "interpolation", "bilinear")
    upstream = chinese_clip_image_transform(32)(photo())
    own = encoder.transform(center_crop=False)(photo())
    assert own.shape == upstream.shape and not torch.equal(own, upstream)
    bicubic = encoder.configured(interpolation="bicubic")
    assert torch.equal(bicubic.transform(center_crop=False)(photo()), upstream)
    assert bicubic.model is encoder.model and encoder.interpolation == "model"  # the same weights, not reloaded
    with pytest.raises(ClipbenchError, match="squashed images only"):
        bicubic.transform(center_crop=True)


def test_interpolation_is_recorded_where_set_and_needs_the_square():
    assert "interpolation" not in resolve("clipbench").settings("imagenet1k", "zh")
    assert "interpolation" not in resolve("capivara").settings("imagenet1k", "pt")
    assert "interpolation bicubic" in resolve("chinese-clip").changes()
    with pytest.raises(ValueError, match="interpolation: an interpolation other than 'model' applies to preprocessing"):
        ProtocolSpec(name="x", description="x", interpolation="bicubic")
    with pytest.raises(ValueError, match="tasks.shapes.interpolation"):
        ProtocolSpec(name="x", description="x", preprocessing="square", interpolation="bicubic",
                     tasks={"shapes": {"preprocessing": "model"}})
    ProtocolSpec(name="x", description="x", tasks={"shapes": {"preprocessing": "square", "interpolation": "bicubic"}})


def test_a_protocol_file_with_a_cropped_bicubic_is_refused(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text('name = "mine"\ndescription = "x"\ninterpolation = "bicubic"\n')
    done = clipbench("run", "--model", "tiny-shapes", "--task", "shapes", "--protocol", str(path), "-o", str(tmp_path / "o"))
    assert_clean_failure(done, 1, str(path), "preprocessing = \"square\"", out=tmp_path)


# ------------------------------------------------------------------------------------------ precision

def test_each_papers_precision():
    """CAPIVARA: fp16 autocast for ImageNet and Babel-ImageNet, fp32 elsewhere; CLIP_benchmark (and AltCLIP, its
    alias) fp16 autocast; ELEVATER and Chinese-CLIP fp32; clipbench records none (fp32)."""
    capivara = resolve("capivara")
    assert [capivara.settings(task, "pt")["precision"] for task in ("imagenet1k", "babel-imagenet", "food-101", "flickr30k")] \
        == ["fp16", "fp16", "fp32", "fp32"]
    assert resolve("clip-benchmark").settings("cifar-10", "en")["precision"] == "fp16"
    assert resolve("altclip").settings("cifar-10", "en")["precision"] == "fp16"
    assert resolve("elevater").settings("cifar-10", "en")["precision"] == "fp32"
    assert resolve("chinese-clip").settings("imagenet1k", "zh")["precision"] == "fp32"
    assert "precision" not in resolve("clipbench").settings("cifar-10", "en")
    settings = capivara.settings("imagenet1k", "pt")
    assert job_precision(settings, RunOptions()) == "fp16"
    assert job_precision(settings, RunOptions(precision="bf16")) == "bf16"  # --precision wins
    assert job_precision(resolve("clipbench").settings("shapes", "en"), RunOptions()) == "fp32"


def test_a_papers_gpu_precision_is_refused_on_the_cpu_with_the_fix(tmp_path):
    out = tmp_path / "out"
    done = clipbench("run", "--model", "tiny-shapes", "--task", "shapes", "--protocol", "altclip", "--device", "cpu",
                     "-o", str(out))
    assert_clean_failure(done, 2, "--protocol altclip", "task 'shapes' at fp16", "CUDA", "--precision fp32", out=tmp_path)
    done = clipbench("run", "--model", "tiny-shapes", "--task", "shapes", "--precision", "fp16", "--device", "cpu",
                     "-o", str(out))
    assert_clean_failure(done, 2, "--precision fp16 needs a CUDA device", out=tmp_path)


def test_configured_shares_the_weights():
    encoder = models.base.Encoder("e", None, torch.device("cpu"), "fp32", {})
    assert encoder.configured("fp32", "model") is encoder and encoder.configured() is encoder
    other = encoder.configured("bf16")
    assert (other.precision, encoder.precision) == ("bf16", "fp32")
    assert other.autocast().fast_dtype == torch.bfloat16


# ------------------------------------------------------------------------------------------ one folder, several protocols

MIXED = '''name = "mixed"
description = "shapes in bf16, the rest in fp32"
precision = "fp32"
[tasks.shapes]
precision = "bf16"
'''


def run(out: Path, *extra: str) -> None:
    done = clipbench("run", "--model", "tiny-shapes", "--task", "shapes", "--limit", "40", "-j", "0", "--language", "en",
                     "--save-predictions", "-o", str(out), *extra)
    assert done.returncode == 0, done.stderr


def scores(path: Path) -> list:
    return [line["top5_scores"] for line in map(json.loads, path.with_suffix(".predictions.jsonl").read_text().splitlines())]


def test_one_folder_holds_a_measurement_under_several_protocols(tmp_path):
    mixed = tmp_path / "mixed.toml"
    mixed.write_text(MIXED)
    out = tmp_path / "out"
    run(out)
    default_file = out / "tiny-shapes" / "shapes.en.limit40.seed0.json"
    before = default_file.read_bytes()
    run(out, "--task", "shapes-captions", "--protocol", str(mixed))
    names = sorted(p.name for p in (out / "tiny-shapes").glob("*.json"))
    assert names == ["shapes-captions.en.limit40.seed0.protocol-mixed.json", "shapes.en.limit40.seed0.json",
                     "shapes.en.limit40.seed0.protocol-mixed.json"]
    assert default_file.read_bytes() == before
    for path in (out / "tiny-shapes").glob("*.json"):
        assert result_path(out, Result.from_disk(path)) == path  # the name is computed back from the record

    # the protocol's per-task precision: shapes ran at bf16, shapes-captions at fp32, and each result says so
    found = {(r["task"], r["protocol"]["name"]): r for r in read_results(out)}
    assert found[("shapes", "mixed")]["run"]["precision"] == "bf16"
    assert found[("shapes", "mixed")]["protocol"]["settings"]["precision"] == "bf16"
    assert found[("shapes-captions", "mixed")]["run"]["precision"] == "fp32"
    assert found[("shapes", "clipbench")]["run"]["precision"] == "fp32"
    assert "precision" not in found[("shapes", "clipbench")]["protocol"]["settings"]
    # ... and really ran so: the same scores as --precision bf16 under the default protocol, not the fp32 ones
    ours = scores(out / "tiny-shapes" / "shapes.en.limit40.seed0.protocol-mixed.json")
    run(tmp_path / "bf16", "--precision", "bf16")
    assert ours == scores(tmp_path / "bf16" / "tiny-shapes" / "shapes.en.limit40.seed0.json")
    assert ours != scores(default_file)

    # a rerun replaces its own files only
    run(out, "--task", "shapes-captions", "--protocol", str(mixed))
    assert sorted(p.name for p in (out / "tiny-shapes").glob("*.json")) == names
    assert default_file.read_bytes() == before

    # a table over the folder does not put two protocols in one cell: it refuses, in one line
    done = clipbench("table", str(out))
    assert_clean_failure(done, 1, "group 'tiny-shapes' on shapes [en]", "protocol differ", "clipbench", "mixed")


def test_names_of_the_default_protocol_stay_and_others_carry_theirs():
    assert result_name("g", None, "shapes", None, None, "en", None, 0) == Path("g/shapes.en.seed0.json")
    assert result_name("g", "c", "shapes", None, None, "pt", 40, 0, "capivara") == \
        Path("g/c/shapes.pt.limit40.seed0.protocol-capivara.json")
    shapes = "shapes"
    assert result_file(Path("o"), "g", None, shapes, None, None, "en", None, None, "clipbench") == Path("o/g/shapes.en.json")
    assert result_file(Path("o"), "g", None, shapes, None, None, "en", None, None, "chinese-clip") == \
        Path("o/g/shapes.en.protocol-chinese-clip.json")


def test_a_file_named_for_a_protocol_that_holds_another_is_kept(tmp_path):
    """A result moved by hand under another protocol's name is not replaced by a run of that protocol."""
    mixed = tmp_path / "mixed.toml"
    mixed.write_text(MIXED)
    out = tmp_path / "out"
    run(out)
    default_file = out / "tiny-shapes" / "shapes.en.limit40.seed0.json"
    moved = default_file.with_name("shapes.en.limit40.seed0.protocol-mixed.json")
    default_file.rename(moved)
    before = moved.read_bytes()
    done = clipbench("run", "--model", "tiny-shapes", "--task", "shapes", "--limit", "40", "-j", "0", "--language", "en",
                     "-o", str(out), "--protocol", str(mixed))
    assert_clean_failure(done, 2, str(moved), "under protocol 'clipbench'", "'mixed'")
    assert moved.read_bytes() == before


# ------------------------------------------------------------------------------------------ caption translations

CAPIVARA_TASK = """name = "capivara-wds"
kind = "retrieval"
description = "test only: a webdataset laid out as CAPIVARA's"
languages = ["en", "pt", "xh", "hi"]
split = "val"
metrics = ["t2i_recall@1", "i2t_recall@1", "mean_recall"]
main_score = "mean_recall"

[dataset]
format = "wds-json"
path = "capivara/flickr30k_val"
shards = "*.tar"
"""


def capivara_shard(root: Path) -> list[dict]:
    """flickr30k_val/00000.tar: <key>.jpg + <key>.json, captions-en (2), captions-pt (Marian, Google, Marian,
    Google: CAPIVARA's interleaving), captions-xh and captions-hi (one translation of each English caption)."""
    folder = root / "capivara" / "flickr30k_val"
    folder.mkdir(parents=True)
    records = []
    with tarfile.open(folder / "00000.tar", "w") as archive:
        for i in range(3):
            buffer = io.BytesIO()
            Image.fromarray(np.full((8, 8, 3), 40 * i, dtype=np.uint8)).save(buffer, format="JPEG")
            english = [f"a dog {i}", f"a cat {i}"]
            record = {"image": f"{i}.jpg", "captions-en": english,
                      "captions-pt": [c for e in english for c in (f"marian {e}", f"google {e}")],
                      "captions-xh": [f"xh {e}" for e in english], "captions-hi": [f"hi {e}" for e in english]}
            for ext, payload in (("jpg", buffer.getvalue()), ("json", json.dumps(record).encode())):
                member = tarfile.TarInfo(f"{i:08d}.{ext}")
                member.size = len(payload)
                archive.addfile(member, io.BytesIO(payload))
            records.append(record)
    return records


def test_capivara_webdataset_splits_the_translations_of_portuguese_only(tmp_path):
    """hiaac-nlp/CAPIVARA @ 375bc336d2fe7fdba230c7a3230ab596280bc614 zero_shot_retrieval.py tokenize(): for pt,
    google -> [1::2], marian -> [0::2]; for xh and hi the whole list; english -> captions-en."""
    from benchmark import data as datasets, tasks

    records = capivara_shard(tmp_path / "data")

    def texts(language: str, extra: str = "") -> list[str]:
        task = tmp_path / "capivara-wds.toml"
        task.write_text(CAPIVARA_TASK + extra)
        return datasets.load(tasks.load_task_file(task), language, tmp_path / "data").texts

    def flat(key: str, pick=slice(None)) -> list[str]:
        return [c for r in records for c in r[key][pick]]

    assert texts("pt") == flat("captions-pt", slice(1, None, 2))
    assert texts("pt", 'translation = "marian"\n') == flat("captions-pt", slice(0, None, 2))
    assert texts("pt", 'translation = "all"\n') == flat("captions-pt")
    for language in ("xh", "hi", "en"):
        assert texts(language) == flat(f"captions-{language}"), language
        assert texts(language, 'translation = "marian"\n') == flat(f"captions-{language}"), language
    assert texts("xh", 'interleaved = ["pt", "xh"]\n') == flat("captions-xh", slice(1, None, 2))
    assert texts("pt", "interleaved = []\n") == flat("captions-pt")
    with pytest.raises(ClipbenchError, match="interleaved: 'en' is the source_language"):
        texts("en", 'interleaved = ["en"]\n')
