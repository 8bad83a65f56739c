"""Tiny, randomly initialised stand-ins for the registered models, written into a Hugging Face hub
cache exactly as the hub serves them (models--org--name/refs/main + snapshots/<commit>/files), so the
real loaders (open_clip's hf-hub:, transformers' from_pretrained) run offline through their hub code."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch

from helpers import write_tiny_hf_clip, write_tiny_siglip

CORPUS = (
    "a photo of a red circle . a drawing of a blue star . uma foto de um círculo vermelho . "
    "desenho de uma estrela azul . 一张红色圆形的照片 。 蓝色星形的图画"
)


def commit_for(repo_id: str) -> str:
    """The commit a stand-in is stored under: the registered spec's pinned revision, else a made-up one."""
    from benchmark.models.catalog import model_registry

    pinned = {spec.id.removeprefix("hf-hub:"): spec.revision for _, spec in model_registry().items()}
    return pinned.get(repo_id) or hashlib.sha1(repo_id.encode()).hexdigest()


def snapshot(cache: Path, repo_id: str) -> Path:
    """The snapshot folder of `repo_id` in the cache, with refs/main pointing at it."""
    commit = commit_for(repo_id)
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(commit)
    folder = repo / "snapshots" / commit
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def tiny_xlmr_tokenizer():
    """A real XLM-R (SentencePiece unigram) tokenizer with a tiny vocabulary: words and characters of en/pt/zh."""
    from transformers import XLMRobertaTokenizer

    words = sorted(set(CORPUS.split()))
    chars = sorted(set(CORPUS.replace(" ", "")))
    pieces = [("<s>", 0.0), ("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -2.0)]
    pieces += [("▁" + w, -1.0) for w in words] + [(c, -3.0) for c in chars if ("▁" + c, -1.0) not in pieces]
    pieces.append(("<mask>", 0.0))
    return XLMRobertaTokenizer(vocab=pieces)


def write_xlmr_base(cache: Path) -> Path:
    """What open_clip reads of `xlm-roberta-base` when a checkpoint is given: config and tokenizer."""
    from transformers import XLMRobertaConfig

    folder = snapshot(cache, "xlm-roberta-base")
    tokenizer = tiny_xlmr_tokenizer()
    XLMRobertaConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=64, max_position_embeddings=80, pad_token_id=1, type_vocab_size=1).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def _open_clip_repo(cache: Path, repo_id: str, model_cfg: dict, build_text_cfg: dict | None = None) -> Path:
    import open_clip
    from safetensors.torch import save_file

    folder = snapshot(cache, repo_id)
    preprocess_cfg = {"mean": list(open_clip.OPENAI_DATASET_MEAN), "std": list(open_clip.OPENAI_DATASET_STD),
                      "interpolation": "bicubic", "resize_mode": "shortest"}
    # build through open_clip itself (random weights); the text tower may be built from a local path,
    # while the config that ships names it by hub id, as the real repositories do
    build_cfg = {**model_cfg, "text_cfg": {**model_cfg["text_cfg"], **(build_text_cfg or {})}}
    (folder / "open_clip_config.json").write_text(json.dumps({"model_cfg": build_cfg, "preprocess_cfg": preprocess_cfg}))
    torch.manual_seed(0)
    model = open_clip.create_model(f"local-dir:{folder}", pretrained_text=False)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(folder / "open_clip_model.safetensors"))
    (folder / "open_clip_config.json").write_text(json.dumps({"model_cfg": model_cfg, "preprocess_cfg": preprocess_cfg}))
    return folder


VISION = {"image_size": 32, "patch_size": 8, "width": 32, "layers": 2, "head_width": 16}


def open_clip_vit(cache: Path, repo_id: str) -> None:
    """A laion-style open_clip repo: ViT image tower, CLIP text transformer, CLIP BPE tokenizer."""
    _open_clip_repo(cache, repo_id, {
        "embed_dim": 16, "vision_cfg": VISION,
        "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2}})


def open_clip_xlmr(cache: Path, repo_id: str) -> None:
    """A CAPIVARA / xlm-roberta-base-ViT-B-32 style repo: ViT + Hugging Face XLM-R text tower."""
    local = str(write_xlmr_base(cache))
    _open_clip_repo(cache, repo_id, {
        "embed_dim": 16, "vision_cfg": VISION,
        "text_cfg": {"hf_model_name": "xlm-roberta-base", "hf_tokenizer_name": "xlm-roberta-base",
                     "hf_pooler_type": "mean_pooler", "hf_proj_type": "mlp", "context_length": 40}},
        build_text_cfg={"hf_model_name": local, "hf_tokenizer_name": local})


def transformers_clip(cache: Path, repo_id: str) -> None:
    write_tiny_hf_clip(snapshot(cache, repo_id))


def transformers_altclip(cache: Path, repo_id: str) -> None:
    from transformers import AltCLIPConfig, AltCLIPModel, AltCLIPProcessor, CLIPImageProcessor

    folder = snapshot(cache, repo_id)
    tokenizer = tiny_xlmr_tokenizer()
    tokenizer.model_max_length = 40
    config = AltCLIPConfig(
        text_config=dict(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                         intermediate_size=64, max_position_embeddings=80, project_dim=16, pad_token_id=1,
                         type_vocab_size=1),
        vision_config=dict(image_size=32, patch_size=8, hidden_size=32, intermediate_size=64,
                           num_hidden_layers=2, num_attention_heads=2),
        projection_dim=16,
    )
    torch.manual_seed(0)
    AltCLIPModel(config).eval().save_pretrained(folder, safe_serialization=True)
    image_processor = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    AltCLIPProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(folder)


def transformers_siglip(cache: Path, repo_id: str) -> None:
    write_tiny_siglip(snapshot(cache, repo_id))


BUILDERS = {
    "capivara": open_clip_xlmr,
    "openclip-xlmr-b32": open_clip_xlmr,
    "openclip-vit-b16-laion2b": open_clip_vit,
    "altclip": transformers_altclip,
    "cft-clip": transformers_clip,
    "openai-vit-l14": transformers_clip,
    "openai-vit-b32": transformers_clip,
    "siglip-base": transformers_siglip,
}


def build(cache: Path, name: str, repo_id: str) -> str:
    """Writes the stand-in for registered model `name` and returns its commit."""
    BUILDERS[name](cache, repo_id.removeprefix("hf-hub:"))
    return commit_for(repo_id.removeprefix("hf-hub:"))
