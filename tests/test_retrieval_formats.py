"""The retrieval formats of the seed papers (Karpathy Flickr30k / COCO, #PraCegoVer, Chinese-CLIP's
Flickr30k-CN / COCO-CN, CAPIVARA's webdatasets), each built in its publisher's exact layout under a data
root, run through the real command line under the registered task names, and checked against recalls
computed here from open_clip embeddings with plain torch. Bad layouts must stop with one clear line.

The command lines start first and run while this process computes the expected numbers; the bad layouts
fail before any model loads, so they run through the same `main()` in this process (no second torch import).
"""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from benchmark.data import shapes
from benchmark.paths import weights_dir
from helpers import read_results

METRICS = ("t2i_recall@1", "t2i_recall@5", "t2i_recall@10", "i2t_recall@1", "i2t_recall@5", "i2t_recall@10",
           "t2i_mean_recall", "i2t_mean_recall", "mean_recall")

# The command line with the registered tasks plus the task files in $EXTRA_TASKS (a CAPIVARA-style
# webdataset has no registered task: its shards are not public).
PATCHED_CLI = """
import os, sys
from pathlib import Path
from benchmark import tasks
registry = tasks.task_registry()
for path in sorted(Path(os.environ["EXTRA_TASKS"]).glob("*.toml")):
    spec = tasks.load_task_file(path)
    registry.register(spec.name, spec, origin=str(path))
from benchmark.cli import main
sys.argv[0] = "clipbench"
main()
"""


def start(*args: str, extra_tasks: Path) -> subprocess.Popen:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
           "EXTRA_TASKS": str(extra_tasks)}
    return subprocess.Popen([sys.executable, "-c", PATCHED_CLI, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env, cwd=Path(__file__).resolve().parent.parent)


# ---------------------------------------------------------------- the model

# A randomly initialised open_clip model small enough to embed these fixtures in well under a second, saved
# as a local-dir folder (open_clip_config.json + open_clip_model.safetensors; CLIP's BPE tokenizer).
STAND_IN = {"embed_dim": 32,
            "vision_cfg": {"image_size": 64, "layers": 2, "width": 64, "head_width": 32, "patch_size": 16},
            "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2}}


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """(CLI arguments, open_clip model, preprocess, tokenizer, whether it declares en/pt/zh): the bundled
    tiny-shapes model, or a random stand-in in a local-dir folder while tiny-shapes has no weights yet."""
    import open_clip

    bundled = weights_dir("tiny-shapes")
    if (bundled / "open_clip_config.json").is_file():
        source, args, declared = f"local-dir:{bundled}", ["--model", "tiny-shapes"], True
    else:
        from safetensors.torch import save_file

        folder = tmp_path_factory.mktemp("stand-in")
        (folder / "open_clip_config.json").write_text(json.dumps({"model_cfg": STAND_IN, "preprocess_cfg": {}}))
        torch.manual_seed(0)
        net = open_clip.create_model(f"local-dir:{folder}")  # no weights yet: randomly initialised
        save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(folder / "open_clip_model.safetensors"))
        source, args, declared = f"local-dir:{folder}", ["--model", f"local-dir:{folder}"], False
    net, _, preprocess = open_clip.create_model_and_transforms(source)
    return args, net.eval(), preprocess, open_clip.get_tokenizer(source), declared


def embed(model, images: list[bytes], texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    _, net, preprocess, tokenizer, _ = model
    pixels = torch.stack([preprocess(Image.open(io.BytesIO(data)).convert("RGB")) for data in images])
    with torch.no_grad():
        return (F.normalize(net.encode_image(pixels).float(), dim=-1),
                F.normalize(net.encode_text(tokenizer(texts)).float(), dim=-1))


def expected_recalls(model, images: list[bytes], texts: list[str], pairs: list[tuple[int, int]]) -> dict[str, float]:
    """Chinese-CLIP / CLIP_benchmark protocol by hand: a text is found when any of its images is in the top K;
    an image (among those some text names) is found when any of its texts is in the top K."""
    image_emb, text_emb = embed(model, images, texts)
    positive = torch.zeros(len(texts), len(images), dtype=torch.bool)
    for t, i in pairs:
        positive[t, i] = True
    scores = text_emb @ image_emb.T
    queried = positive.any(dim=0)
    out = {"n_images": len(images), "n_texts": len(texts)}
    for k in (1, 5, 10):
        top_images = scores.topk(min(k, len(images)), dim=1).indices
        top_texts = scores.T.topk(min(k, len(texts)), dim=1).indices
        out[f"t2i_recall@{k}"] = positive.gather(1, top_images).any(dim=1).double().mean().item()
        out[f"i2t_recall@{k}"] = positive.T.gather(1, top_texts).any(dim=1)[queried].double().mean().item()
    for d in ("t2i", "i2t"):
        out[f"{d}_mean_recall"] = float(np.mean([out[f"{d}_recall@{k}"] for k in (1, 5, 10)]))
    out["mean_recall"] = float(np.mean([out[f"{d}_recall@{k}"] for d in ("t2i", "i2t") for k in (1, 5, 10)]))
    return out


def one_image_each(samples: list, captions: list[list[str]]) -> tuple[list[bytes], list[str], list[tuple[int, int]]]:
    texts = [t for caps in captions for t in caps]
    owners = [i for i, caps in enumerate(captions) for _ in caps]
    return [sample[0] for sample in samples], texts, list(enumerate(owners))


# ---------------------------------------------------------------- fixtures in the publishers' layouts

def jpeg(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=92)
    return buffer.getvalue()


def unique_samples(n: int) -> list[tuple[bytes, dict[str, list[str]]]]:
    """Drawn shapes with captions that say what is visible, no caption repeated across images."""
    out, seen = [], set()
    for image, captions in shapes.caption_samples(n + 40, seed=2024):
        if captions["en"][0] not in seen:
            seen.add(captions["en"][0])
            out.append((jpeg(image), captions))
        if len(out) == n:
            return out
    raise AssertionError("not enough distinct samples")


SAMPLES = unique_samples(60)


def write(path: Path, data: bytes | str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data if isinstance(data, bytes) else data.encode("utf-8"))


def karpathy_sentences(captions: list[str]) -> list[dict]:
    return [{"raw": f" {c} \n", "tokens": c.rstrip(".").split()} for c in captions]


def build_flickr30k(root: Path, files: bool = True) -> dict:
    """dataset_flickr30k.json (test 10, val 11, train 2 whose files are absent), flickr30k-images/, flickr30k_pt.jsonl."""
    folder, entries, pt_lines, truth = root / "flickr30k", [], [], {"test": [], "val": []}
    for i, (data, captions) in enumerate(SAMPLES[:23]):
        split = "test" if i < 10 else "val" if i < 21 else "train"
        name = f"{1000092795 + 7919 * i}.jpg"
        english = captions["en"] + ([f"a picture of {captions['en'][0]}"] if i % 2 else [])
        entries.append({"filename": name, "imgid": i, "split": split, "sentences": karpathy_sentences(english)})
        pt_lines.append(json.dumps({"image": name, "captions": captions["pt"]}, ensure_ascii=False))
        if split != "train":
            if files:
                write(folder / "flickr30k-images" / name, data)
            truth[split].append((data, {"en": [c.strip() for c in english], "pt": captions["pt"]}))
    write(folder / "dataset_flickr30k.json", json.dumps({"images": entries, "dataset": "flickr30k"}))
    write(folder / "flickr30k_pt.jsonl", "\n".join(reversed(pt_lines)) + "\n")  # any order: matched by file name
    return truth


def build_mscoco(root: Path) -> list:
    """dataset_coco.json (test 10 with filepath val2014, one image with 6 captions; restval 2 absent), val2014/, coco_pt.jsonl."""
    folder, entries, pt_lines, truth = root / "mscoco", [], [], []
    for i, (data, captions) in enumerate(SAMPLES[23:35]):
        split = "test" if i < 10 else "restval"
        filepath = "val2014" if split == "test" else "train2014"
        name = f"COCO_{filepath}_{391895 + 17 * i:012d}.jpg"
        english = list(captions["en"])
        if i == 3:  # COCO has a few images with more than five captions: all are kept
            english += [f"{prefix} {captions['en'][0]}" for prefix in ("a photo of", "an image of", "a picture of", "a drawing of")]
        entries.append({"filepath": filepath, "filename": name, "cocoid": 391895 + 17 * i, "split": split,
                        "sentences": karpathy_sentences(english)})
        pt_lines.append(json.dumps({"image": name, "captions": captions["pt"]}, ensure_ascii=False))
        if split == "test":
            write(folder / filepath / name, data)
            truth.append((data, {"en": english, "pt": captions["pt"]}))
    write(folder / "dataset_coco.json", json.dumps({"images": entries, "dataset": "coco"}))
    write(folder / "coco_pt.jsonl", "\n".join(pt_lines) + "\n")
    return truth


def build_pracegover(root: Path) -> list:
    """pracegover_400k.json as a dict of splits (test 12; validation and train records whose files are absent), images/."""
    folder, truth = root / "pracegover", []
    records = {"train": [], "validation": [], "test": []}
    for i, (data, captions) in enumerate(SAMPLES[35:52]):
        split = "test" if i < 12 else "validation" if i < 15 else "train"
        name = f"{i:06d}_pracegover.jpg"
        records[split].append({"user": f"perfil{i % 4}", "filename": name, "caption": f"  {captions['pt'][0]} ", "date": "2020-01-01"})
        if split == "test":
            write(folder / "images" / name, data)
            truth.append((data, captions["pt"][0]))
    write(folder / "pracegover_400k.json", json.dumps(records, ensure_ascii=False))
    return truth


def build_cnclip(folder: Path, samples: list, texts: list[tuple[str, list[int]]], split: str = "test") -> None:
    """<split>_imgs.tsv (urlsafe base64, as Chinese-CLIP writes it) and <split>_texts.jsonl."""
    lines = [f"{900000 + 31 * i}\t{base64.urlsafe_b64encode(data).decode('ascii')}" for i, (data, _) in enumerate(samples)]
    write(folder / f"{split}_imgs.tsv", "\n".join(lines) + "\n")
    records = [{"text_id": 70000 + t, "text": text, "image_ids": [900000 + 31 * i for i in ids]} for t, (text, ids) in enumerate(texts)]
    write(folder / f"{split}_texts.jsonl", "\n".join(json.dumps(r, ensure_ascii=False) for r in records) + "\n")


def flickr30k_cn_texts(samples: list) -> list[tuple[str, list[int]]]:
    return [(text, [i]) for i, (_, captions) in enumerate(samples) for text in captions["zh"]]


def coco_cn_texts(samples: list) -> list[tuple[str, list[int]]]:
    """One image per text, except two texts that name two images each; image 8 is named by no text."""
    texts = [(captions["zh"][0], [i]) for i, (_, captions) in enumerate(samples[:8])]
    texts[2] = (texts[2][0], [2, 5])
    texts[6] = (texts[6][0], [6, 1])
    texts.append((samples[4][1]["zh"][1], [4]))
    return texts


def build_capivara_wds(root: Path) -> list:
    """CAPIVARA's own webdataset folder flickr30k_val/: 00000.tar, 00001.tar with <key>.jpg + <key>.json
    {"captions-en": [...], "captions-pt": [marian, google, marian, google, ...]} (MarianMT first: CAPIVARA's
    zero_shot_retrieval.py at hiaac-nlp/CAPIVARA@375bc33 takes [1::2] as Google, [0::2] as Marian)."""
    folder, truth = root / "capivara" / "flickr30k_val", []
    folder.mkdir(parents=True)
    samples = SAMPLES[52:60]
    for shard in range(2):
        with tarfile.open(folder / f"{shard:05d}.tar", "w") as archive:
            for i in range(4 * shard, 4 * shard + 4):
                data, captions = samples[i]
                google = captions["pt"]
                marian = [f"{c} (marian)" for c in google]
                record = {"image": f"img{i}.jpg", "captions-en": captions["en"],
                          "captions-pt": [c for pair in zip(marian, google) for c in pair]}
                for ext, payload in (("jpg", data), ("json", json.dumps(record, ensure_ascii=False).encode("utf-8"))):
                    member = tarfile.TarInfo(f"{i:08d}.{ext}")
                    member.size = len(payload)
                    archive.addfile(member, io.BytesIO(payload))
                truth.append((data, {"en": captions["en"], "pt": google}))
    return truth


CAPIVARA_TASK = """name = "capivara-flickr30k"
kind = "retrieval"
description = "test only: CAPIVARA's Flickr30k validation webdataset"
languages = ["en", "pt"]
split = "val"
metrics = {metrics}
main_score = "mean_recall"

[dataset]
format = "wds-json"
path = "capivara/flickr30k_val"
shards = "*.tar"
"""


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """The data root with every dataset, the broken variants, and the CAPIVARA task file."""
    base = tmp_path_factory.mktemp("retrieval")
    root = base / "data"
    truth = {
        "flickr30k": build_flickr30k(root),
        "mscoco": build_mscoco(root),
        "pracegover": build_pracegover(root),
        "capivara": build_capivara_wds(root),
        "flickr30k-cn": SAMPLES[0:10],
        "coco-cn": SAMPLES[10:19],
    }
    build_cnclip(root / "Flickr30k-CN", truth["flickr30k-cn"], flickr30k_cn_texts(truth["flickr30k-cn"]))
    build_cnclip(root / "COCO-CN", truth["coco-cn"], coco_cn_texts(truth["coco-cn"]))
    extra_tasks = base / "tasks"
    write(extra_tasks / "capivara-flickr30k.toml", CAPIVARA_TASK.format(metrics=json.dumps(list(METRICS))))
    return {"base": base, "root": root, "truth": truth, "extra_tasks": extra_tasks}


def expectations(model, truth: dict) -> dict[tuple[str, str], dict]:
    out = {}
    for task, split in (("flickr30k", "test"), ("flickr30k-val", "val")):
        for language in ("en", "pt"):
            out[(task, language)] = expected_recalls(model, *one_image_each(truth["flickr30k"][split], [c[language] for _, c in truth["flickr30k"][split]]))
    for language in ("en", "pt"):
        out[("mscoco", language)] = expected_recalls(model, *one_image_each(truth["mscoco"], [c[language] for _, c in truth["mscoco"]]))
        out[("capivara-flickr30k", language)] = expected_recalls(model, *one_image_each(truth["capivara"], [c[language] for _, c in truth["capivara"]]))
    out[("pracegover", "pt")] = expected_recalls(model, *one_image_each(truth["pracegover"], [[c] for _, c in truth["pracegover"]]))
    for task, texts in (("flickr30k-cn", flickr30k_cn_texts(truth["flickr30k-cn"])), ("coco-cn", coco_cn_texts(truth["coco-cn"]))):
        pairs = [(t, i) for t, (_, ids) in enumerate(texts) for i in ids]
        out[(task, "zh")] = expected_recalls(model, [d for d, _ in truth[task]], [text for text, _ in texts], pairs)
    return out


@pytest.fixture(scope="module")
def runs(model, data):
    """Start the command line(s), compute the expected numbers meanwhile, then collect every result file.
    A model that declares en, pt and zh runs every language of every task in one command; a stand-in that
    declares none needs --language for the bilingual tasks, so it runs two."""
    args, common = model[0], ["--data-root", str(data["root"]), "--num-workers", "0", "--batch-size", "16"]
    everything = ["flickr30k", "flickr30k-val", "mscoco", "capivara-flickr30k", "pracegover", "flickr30k-cn", "coco-cn"]
    if model[4]:
        groups = [(everything, [])]
    else:
        groups = [(everything[:4], ["--language", "en", "--language", "pt"]), (everything[4:], [])]
    processes = []
    for n, (names, languages) in enumerate(groups):
        out = data["base"] / f"out-{n}"
        tasks = [a for name in names for a in ("--task", name)]
        processes.append((out, start("run", *args, *tasks, *languages, "--output", str(out), *common, extra_tasks=data["extra_tasks"])))
    expected = expectations(model, data["truth"])
    found = {}
    for out, process in processes:
        _, stderr = process.communicate(timeout=600)
        assert process.returncode == 0, stderr
        found.update({(r["task"], r["language"]): r for r in read_results(out)})
    return found, expected


def check(runs, task: str, language: str) -> dict:
    found, expected = runs
    result, want = found[(task, language)], expected[(task, language)]
    assert result["dataset"]["n_images"] == want["n_images"] and result["dataset"]["n_texts"] == want["n_texts"]
    assert set(result["metrics"]) == set(METRICS)
    for name in METRICS:
        assert result["metrics"][name] == pytest.approx(want[name], abs=1e-6), name
    return result


# ---------------------------------------------------------------- correct layouts

def test_flickr30k_karpathy_test_and_val_in_two_languages(runs):
    for task in ("flickr30k", "flickr30k-val"):
        for language in ("en", "pt"):
            check(runs, task, language)
    found = runs[0]
    assert (found[("flickr30k", "en")]["dataset"]["n_images"], found[("flickr30k-val", "en")]["dataset"]["n_images"]) == (10, 11)
    # one image set per split whatever the language: the pt run reuses the en image embeddings
    assert found[("flickr30k", "en")]["dataset"]["fingerprint"] == found[("flickr30k", "pt")]["dataset"]["fingerprint"]
    assert found[("flickr30k", "pt")]["run"]["image_embeddings_reused"] is True
    assert found[("flickr30k", "en")]["dataset"]["fingerprint"] != found[("flickr30k-val", "en")]["dataset"]["fingerprint"]
    assert found[("flickr30k-val", "pt")]["split"] == "val"


def test_mscoco_keeps_every_caption(runs):
    english = check(runs, "mscoco", "en")
    check(runs, "mscoco", "pt")
    assert english["dataset"]["n_images"] == 10 and english["dataset"]["n_texts"] == 24  # nine images with 2 captions, one with 6


def test_pracegover_one_caption_per_image(runs):
    result = check(runs, "pracegover", "pt")
    assert result["dataset"]["n_images"] == result["dataset"]["n_texts"] == 12


def test_flickr30k_cn_from_chinese_clip_tsv(runs):
    result = check(runs, "flickr30k-cn", "zh")
    assert (result["dataset"]["n_images"], result["dataset"]["n_texts"]) == (10, 20)


def test_flickr30k_in_chinese_is_flickr30k_cn(model, data, tmp_path, monkeypatch):
    """`--task flickr30k --language zh` runs, and records, Flickr30k-CN (the task file's language_tasks)."""
    from benchmark import cli

    out = tmp_path / "out"
    monkeypatch.setattr(sys, "argv", ["clipbench", "run", *model[0], "--task", "flickr30k", "--language", "zh",
                                      "--data-root", str(data["root"]), "--output", str(out), "--num-workers", "0"])
    with pytest.raises(SystemExit) as exit_:
        cli.main()
    assert exit_.value.code == 0
    [result] = read_results(out)
    assert (result["task"], result["language"]) == ("flickr30k-cn", "zh")
    truth = data["truth"]["flickr30k-cn"]
    texts = flickr30k_cn_texts(truth)
    want = expected_recalls(model, [d for d, _ in truth], [text for text, _ in texts],
                            [(t, i) for t, (_, ids) in enumerate(texts) for i in ids])
    for name in METRICS:
        assert result["metrics"][name] == pytest.approx(want[name], abs=1e-6), name


def test_capivara_webdataset_picks_google_translations(runs):
    check(runs, "capivara-flickr30k", "en")
    portuguese = check(runs, "capivara-flickr30k", "pt")
    assert portuguese["dataset"]["n_texts"] == 16 and portuguese["run"]["image_embeddings_reused"] is True


def test_capivara_webdataset_reads_translations_as_capivara_does(data, tmp_path):
    """Google at odd positions, MarianMT at even ones; the English source list is kept whole."""
    from benchmark import data as datasets, tasks

    truth = data["truth"]["capivara"]
    google = [c for _, captions in truth for c in captions["pt"]]
    for translation, want in (("google", google), ("marian", [f"{c} (marian)" for c in google])):
        task = tmp_path / "capivara-flickr30k.toml"
        task.write_text(CAPIVARA_TASK.format(metrics=json.dumps(list(METRICS))) + f'translation = "{translation}"\n')
        loaded = datasets.load(tasks.load_task_file(task), "pt", data["root"])
        assert loaded.texts == want, translation
        assert loaded.text_to_image.tolist() == [i for i, (_, c) in enumerate(truth) for _ in c["pt"]]
    english = datasets.load(tasks.load_task_file(task), "en", data["root"])
    assert english.texts == [c for _, captions in truth for c in captions["en"]]


def test_coco_cn_follows_chinese_clip_multi_image_protocol(runs):
    check(runs, "coco-cn", "zh")


def test_coco_cn_loader_gives_every_positive_pair(data):
    """The cnclip loader hands the whole text-image relation to the metric code."""
    from benchmark import data as datasets, tasks

    loaded = datasets.load(tasks.task_registry().get("coco-cn"), "zh", data["root"])
    plain = datasets.load(tasks.task_registry().get("flickr30k-cn"), "zh", data["root"])
    texts = coco_cn_texts(data["truth"]["coco-cn"])
    assert loaded.texts == [text for text, _ in texts]
    assert loaded.text_to_image.tolist() == [ids[0] for _, ids in texts]
    assert sorted(map(tuple, loaded.positives.tolist())) == sorted((t, i) for t, (_, ids) in enumerate(texts) for i in ids)
    assert plain.positives is None  # one image per text and every image named: text_to_image says it all
    image = loaded.images.open(5)
    assert image.size == (80, 80) and loaded.images.describe(5).endswith("test_imgs.tsv: image_id 900155")


# ---------------------------------------------------------------- broken layouts: one line, no traceback, no result

def break_karpathy_annotations(base: Path) -> str:
    build_flickr30k(base)
    (base / "flickr30k" / "dataset_flickr30k.json").unlink()
    return "flickr30k"


def break_karpathy_folder(base: Path) -> str:
    build_flickr30k(base, files=False)
    return "flickr30k-val"


def break_karpathy_files(base: Path) -> str:
    build_flickr30k(base)
    for path in sorted((base / "flickr30k" / "flickr30k-images").iterdir())[:2]:
        path.unlink()
    return "flickr30k"


def break_cnclip(base: Path) -> str:
    build_cnclip(base / "Flickr30k-CN", SAMPLES[:10], flickr30k_cn_texts(SAMPLES[:10]))
    (base / "Flickr30k-CN" / "test_imgs.tsv").unlink()
    return "flickr30k-cn"


def break_pracegover(base: Path) -> str:
    build_pracegover(base)
    for path in (base / "pracegover" / "images").iterdir():
        path.unlink()
    (base / "pracegover" / "images").rmdir()
    return "pracegover"


def break_wds_json(base: Path) -> str:
    (base / "capivara" / "flickr30k_val").mkdir(parents=True)
    return "capivara-flickr30k"


def nothing_there(base: Path) -> str:
    return "coco-cn"


@pytest.mark.parametrize("breaker, needles", [
    (break_karpathy_annotations, ["task 'flickr30k'", "dataset_flickr30k.json not found", "flickr30k-images/",
                                  "https://cs.stanford.edu/people/karpathy/deepimagesent/"]),
    (break_karpathy_folder, ["task 'flickr30k-val'", "the image folder flickr30k-images/ not found",
                             "https://shannon.cs.illinois.edu/DenotationGraph/"]),
    (break_karpathy_files, ["task 'flickr30k'", "2 of 10 images listed in", "the first is", "1000092795.jpg"]),
    (break_cnclip, ["task 'flickr30k-cn'", "test_imgs.tsv not found", "test_imgs.tsv, test_texts.jsonl", "Flickr30k-CN.zip"]),
    (break_pracegover, ["task 'pracegover'", "the image folder images/ not found", "pracegover_400k.json, images/",
                        "larocs/PraCegoVer"]),
    (break_wds_json, ["task 'capivara-flickr30k'", "no tar shard matching '*.tar'", "flickr30k_val"]),
    (nothing_there, ["task 'coco-cn'", "COCO-CN not found", "test_imgs.tsv, test_texts.jsonl", "li-xirong/coco-cn"]),
], ids=lambda value: getattr(value, "__name__", ""))
def test_wrong_layout_is_one_clear_line(model, data, tmp_path, monkeypatch, capsys, breaker, needles):
    """The command line's own main(), in this process: the error comes before any model loads."""
    from benchmark import cli, tasks

    registry = tasks.task_registry()
    patched = type(registry)("task")
    for name, spec in registry.items():
        patched.register(name, spec)
    patched.register("capivara-flickr30k", tasks.load_task_file(data["extra_tasks"] / "capivara-flickr30k.toml"))
    monkeypatch.setattr(tasks, "task_registry", lambda root=None: patched)
    task = breaker(tmp_path / "data")
    out = tmp_path / "out"
    # flickr30k's zh is flickr30k-cn's data, absent here: a run of both languages names both (benchmark.missing)
    only = ["--language", "en"] if task == "flickr30k" else []
    monkeypatch.setattr(sys, "argv", ["clipbench", "run", *model[0], "--task", task, *only, "--data-root",
                                      str(tmp_path / "data"), "--output", str(out), "--num-workers", "0"])
    with pytest.raises(SystemExit) as exit_:
        cli.main()
    stderr = capsys.readouterr().err
    assert exit_.value.code == 1, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    assert "Traceback" not in stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    assert not out.exists() or not list(out.rglob("*.json"))
