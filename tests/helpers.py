"""Builders for small on-disk fixtures in the exact layouts clipbench reads."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image


def write_wds(root: Path, samples: list[dict], split: str = "test", shard_size: int = 50,
              classnames: list[str] | None = None, templates: list[str] | None = None,
              dataset_type: str | None = None, image_format: str = "png") -> Path:
    """A CLIP_benchmark-layout webdataset written with webdataset's own ShardWriter, as
    clip_benchmark_export_wds does. Each sample: {"image": PIL image, "cls": int} or {"image", "txt": [...]}."""
    import webdataset

    (root / split).mkdir(parents=True, exist_ok=True)
    with webdataset.ShardWriter(str(root / split / "%d.tar"), maxcount=shard_size, verbose=0) as sink:
        for index, sample in enumerate(samples):
            buffer = io.BytesIO()
            sample["image"].save(buffer, format={"jpg": "JPEG"}.get(image_format, image_format.upper()))
            record = {"__key__": "s%07d" % index, image_format: buffer.getvalue()}
            if "cls" in sample:
                record["cls"] = int(sample["cls"])
            if "txt" in sample:
                record["txt"] = "\n".join(sample["txt"])
            sink.write(record)
        shards = sink.shard
    (root / split / "nshards.txt").write_text(f"{shards}\n")
    if classnames is not None:
        (root / "classnames.txt").write_text("\n".join(classnames) + "\n", encoding="utf-8")
    if templates is not None:
        (root / "zeroshot_classification_templates.txt").write_text("\n".join(templates) + "\n", encoding="utf-8")
    if dataset_type is not None:
        (root / "dataset_type.txt").write_text(dataset_type + "\n")
    return root


def hub_dataset(cache: Path, repo_id: str, folder: Path, commit: str = "0123456789abcdef0123456789abcdef01234567") -> Path:
    """`folder`'s files as huggingface_hub stores a downloaded dataset repository in its cache
    (datasets--org--name/refs/main, blobs/<sha256>, snapshots/<commit>/<file> linked to its blob)."""
    repo = cache / ("datasets--" + repo_id.replace("/", "--"))
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(commit)
    snapshot = repo / "snapshots" / commit
    for file in sorted(p for p in folder.rglob("*") if p.is_file()):
        payload = file.read_bytes()
        blob = repo / "blobs" / hashlib.sha256(payload).hexdigest()
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(payload)
        link = snapshot / file.relative_to(folder)
        link.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(os.path.relpath(blob, link.parent), link)
    return snapshot


def drawn_image(seed: int, size: int = 48) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8))


def clipbench(*args: str, cwd: Path | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run the real command line in a subprocess, as a user would."""
    import os

    full_env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", "benchmark.cli", *args], capture_output=True, text=True,
                          cwd=cwd, env=full_env, timeout=600)


def clipbench_here(*args: str, cwd: Path | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    """The real command line (benchmark.cli.run_app, what `clipbench` runs) in this process, its stdout and stderr
    captured and its exit code returned as `clipbench` gives them: a subprocess imports torch again each time, seconds
    on a small machine. For what a command says, exits with and writes; a test about processes (killed, concurrent,
    Ctrl-C, a traceback) uses `clipbench`. `env` and `cwd` hold for the call only. huggingface_hub reads
its variables once, at import: HF_HUB_CACHE is set where it keeps it (its functions read it per call); an `env` with
another HF_* variable runs a subprocess."""
    import contextlib
    import io
    import os
    import traceback

    from benchmark import cli

    import huggingface_hub.constants as hub

    if any(key.startswith("HF_") and key != "HF_HUB_CACHE" for key in env or {}):  # read once, at import
        return clipbench(*args, cwd=cwd, env=env)
    out, err = io.StringIO(), io.StringIO()
    saved_hub_cache = hub.HF_HUB_CACHE
    saved_env, saved_cwd = dict(os.environ), os.getcwd()
    try:
        os.environ.update({"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", **(env or {})})
        if cwd is not None:
            os.chdir(cwd)
        if env and "HF_HUB_CACHE" in env:  # what the variable sets at import; huggingface_hub reads it per call
            hub.HF_HUB_CACHE = str(env["HF_HUB_CACHE"])
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            debug = "--debug" in args
            try:
                code = cli.run_app([a for a in args if a != "--debug"], debug)
            except Exception:  # noqa: BLE001 - as a process with --debug: the traceback, exit 1
                traceback.print_exc()
                code = 1
    finally:
        os.environ.clear()
        os.environ.update(saved_env)
        os.chdir(saved_cwd)
        hub.HF_HUB_CACHE = saved_hub_cache
    return subprocess.CompletedProcess(["clipbench", *args], code, out.getvalue(), err.getvalue())


def read_results(folder: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(folder.rglob("*.json"))]


def tiny_clip_tokenizer():
    """A real CLIP BPE tokenizer (byte-level alphabet, '</w>' word ends) with a tiny vocabulary, built locally."""
    from transformers import CLIPTokenizer
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    alphabet = list(bytes_to_unicode().values())
    vocab = alphabet + [c + "</w>" for c in alphabet] + ["<|startoftext|>", "<|endoftext|>"]
    return CLIPTokenizer(vocab={token: i for i, token in enumerate(vocab)}, merges=[])


def write_tiny_hf_clip(folder: Path, seed: int = 0) -> Path:
    """A randomly initialised transformers CLIPModel saved exactly as the hub serves one: config.json,
    model.safetensors, preprocessor and tokenizer files."""
    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor

    tokenizer = tiny_clip_tokenizer()
    config = CLIPConfig(
        text_config=dict(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, max_position_embeddings=40,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id),
        vision_config=dict(image_size=32, patch_size=8, hidden_size=32, intermediate_size=64,
                           num_hidden_layers=2, num_attention_heads=2),
        projection_dim=16,
    )
    torch.manual_seed(seed)
    model = CLIPModel(config).eval()
    image_processor = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    tokenizer.model_max_length = 40
    processor = CLIPProcessor(image_processor=image_processor, tokenizer=tokenizer)
    model.save_pretrained(folder, safe_serialization=True)
    processor.save_pretrained(folder)
    return folder


SIGLIP_CORPUS = ("a photo of a red circle . a drawing of a blue star . a photo of two cats . a photo of two dogs . "
                 "a green square on a white background . a small yellow triangle . a photo of the number seven")


def tiny_siglip_tokenizer(folder: Path):
    """A real SiglipTokenizer over a SentencePiece unigram model trained here, offline, on a few English
    captions (ids as SigLIP's: 0 <pad>, 1 </s> (also its pad token), 2 <unk>), written as `spiece.model`."""
    import io as _io

    import sentencepiece as spm
    from transformers import SiglipTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    lines = [line.strip() for line in SIGLIP_CORPUS.split(" . ")] * 8
    model = _io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(lines), model_writer=model, vocab_size=64,
                                   model_type="unigram", pad_id=0, eos_id=1, unk_id=2, bos_id=-1,
                                   hard_vocab_limit=False, num_threads=1, minloglevel=2)
    (folder / "spiece.model").write_bytes(model.getvalue())
    # as transformers' convert_siglip_to_hf.py made the hub's: no attention_mask ("original one doesn't require it")
    return SiglipTokenizer(vocab_file=str(folder / "spiece.model"), model_max_length=64, model_input_names=["input_ids"])


def tiny_gemma_tokenizer():
    """A real GemmaTokenizer with SigLIP 2's settings (transformers' convert_siglip_to_hf.py: no BOS, EOS appended,
    right padding, no attention_mask, do_lower_case=True, which GemmaTokenizer ignores: case is kept) whose
    vocabulary is the byte-fallback pieces and the characters of both cases (no merges: one token a character)."""
    from transformers import GemmaTokenizer

    vocab = {"<pad>": 0, "<eos>": 1, "<bos>": 2, "<unk>": 3, "<mask>": 4}
    vocab.update({f"<0x{byte:02X}>": 5 + byte for byte in range(256)})
    for char in "▁" + "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,!?'":
        vocab.setdefault(char, len(vocab))
    return GemmaTokenizer(vocab=vocab, merges=[], add_bos_token=False, add_eos_token=True, padding_side="right",
                          do_lower_case=True, model_input_names=["input_ids"], model_max_length=64)


def write_tiny_siglip(folder: Path, seed: int = 0, gemma: bool = False) -> Path:
    """A randomly initialised transformers SiglipModel saved as the hub serves google/siglip-base-patch16-224
    (config.json, model.safetensors, preprocessor_config.json, tokenizer files): 64 text positions, a 32 px
    square input, SiglipImageProcessor's own defaults otherwise. gemma=True: a SigLIP 2 fixed-resolution
    checkpoint instead (the same SiglipModel class, with a Gemma tokenizer)."""
    import torch
    from transformers import SiglipConfig, SiglipImageProcessor, SiglipModel

    tokenizer = tiny_gemma_tokenizer() if gemma else tiny_siglip_tokenizer(folder)
    config = SiglipConfig(
        text_config=dict(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, max_position_embeddings=64, pad_token_id=tokenizer.pad_token_id,
                         eos_token_id=tokenizer.eos_token_id, bos_token_id=None),
        vision_config=dict(image_size=32, patch_size=8, hidden_size=32, intermediate_size=64,
                           num_hidden_layers=2, num_attention_heads=2),
    )
    torch.manual_seed(seed)
    model = SiglipModel(config).eval()
    model.save_pretrained(folder, safe_serialization=True)
    # the hub's files: preprocessor_config.json and the tokenizer's own, each saved by its class
    resample = {"resample": 2} if gemma else {}  # SigLIP 2's processors resize bilinearly (the conversion script)
    SiglipImageProcessor(size={"height": 32, "width": 32}, **resample).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def write_tiny_naflex(folder: Path) -> Path:
    """A randomly initialised SigLIP 2 NaFlex model (Siglip2Model, config model_type "siglip2"), saved."""
    import torch
    from transformers import Siglip2Config, Siglip2Model

    config = Siglip2Config(
        text_config=dict(vocab_size=300, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=2, max_position_embeddings=64, pad_token_id=0, bos_token_id=None,
                         eos_token_id=1),
        vision_config=dict(num_patches=16, patch_size=8, hidden_size=32, intermediate_size=64,
                           num_hidden_layers=1, num_attention_heads=2),
    )
    torch.manual_seed(0)
    Siglip2Model(config).eval().save_pretrained(folder, safe_serialization=True)
    return folder
