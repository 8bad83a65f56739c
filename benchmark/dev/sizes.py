"""Parameter counts of the registered architectures, counted from the architectures themselves.

    python -m benchmark.dev.sizes

Each model is built on PyTorch's meta device (shapes only: no memory, no weights, no network) from the
configuration its hub repository serves, written out here because the hub is not reachable from every
machine, and its parameters counted. `tests/test_models.py` checks these counts against the `parameters`
of the registered specs, so `clipbench list models` shows a count even before any weights are cached.
"""

from __future__ import annotations

import logging

from ..models.base import count_parameters as _count

# transformers CLIPConfig of openai/clip-vit-large-patch14 (and of humane-lab/CFT-CLIP, fine-tuned from it)
VIT_L14_VISION = {"hidden_size": 1024, "intermediate_size": 4096, "num_hidden_layers": 24, "num_attention_heads": 16,
                  "image_size": 224, "patch_size": 14, "projection_dim": 768}
VIT_L14_TEXT = {"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12, "num_attention_heads": 12,
                "max_position_embeddings": 77, "vocab_size": 49408, "projection_dim": 768}
# openai/clip-vit-base-patch32
VIT_B32_VISION = {"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12, "num_attention_heads": 12,
                  "image_size": 224, "patch_size": 32, "projection_dim": 512}
VIT_B32_TEXT = {"hidden_size": 512, "intermediate_size": 2048, "num_hidden_layers": 12, "num_attention_heads": 8,
                "max_position_embeddings": 77, "vocab_size": 49408, "projection_dim": 512}
# XLM-R: the text towers of BAAI/AltCLIP (large, RobertaSeriesModel) and of open_clip's xlm-roberta-base-ViT-B-32
XLMR_LARGE = {"vocab_size": 250002, "hidden_size": 1024, "num_hidden_layers": 24, "num_attention_heads": 16,
              "intermediate_size": 4096, "max_position_embeddings": 514, "type_vocab_size": 1, "project_dim": 768,
              "pad_token_id": 1}
XLMR_BASE = {"vocab_size": 250002, "hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12,
             "intermediate_size": 3072, "max_position_embeddings": 514, "type_vocab_size": 1, "pad_token_id": 1}


# google/siglip-base-patch16-224 (SiglipConfig's defaults are this model's)
SIGLIP_B16_VISION = {"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12, "num_attention_heads": 12,
                     "image_size": 224, "patch_size": 16}
SIGLIP_B16_TEXT = {"vocab_size": 32000, "hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12,
                   "num_attention_heads": 12, "max_position_embeddings": 64}


def siglip(vision: dict, text: dict) -> int:
    import torch
    from transformers import SiglipConfig, SiglipModel

    with torch.device("meta"):
        return _count(SiglipModel(SiglipConfig(vision_config=vision, text_config=text)))


def clip(vision: dict, text: dict) -> int:
    import torch
    from transformers import CLIPConfig, CLIPModel

    projection = vision["projection_dim"]
    config = CLIPConfig(vision_config={k: v for k, v in vision.items() if k != "projection_dim"},
                        text_config={k: v for k, v in text.items() if k != "projection_dim"},
                        projection_dim=projection)
    with torch.device("meta"):
        return _count(CLIPModel(config))


def altclip() -> int:
    import torch
    from transformers import AltCLIPConfig, AltCLIPModel

    config = AltCLIPConfig(vision_config={k: v for k, v in VIT_L14_VISION.items() if k != "projection_dim"},
                           text_config=XLMR_LARGE, projection_dim=768)
    with torch.device("meta"):
        return _count(AltCLIPModel(config))


def open_clip_builtin(architecture: str) -> int:
    import open_clip
    import torch

    with torch.device("meta"):
        return _count(open_clip.create_model(architecture, device="meta"))


def open_clip_xlmr_base_b32() -> int:
    """open_clip's xlm-roberta-base-ViT-B-32 (CAPIVARA and its baseline): open_clip's ViT-B/32 tower, its
    HFTextEncoder over XLM-R base (mean pooler, MLP projection) and the logit scale. Loading from the hub,
    open_clip builds XLM-R without its pooler layer, so that layer is not counted."""
    import open_clip
    import torch
    from open_clip.hf_model import HFTextEncoder
    from transformers import XLMRobertaConfig

    with torch.device("meta"):
        visual = open_clip.create_model("ViT-B-32", device="meta").visual
        text = HFTextEncoder("xlm-roberta-base", output_dim=512, config=XLMRobertaConfig(**XLMR_BASE),
                             pooler_type="mean_pooler", proj_type="mlp")
        return _count(visual) + _count(text) - _count(text.transformer.pooler) + 1


def registered() -> dict[str, int]:
    """Parameter count per registered model name (those whose architecture is known)."""
    large = clip(VIT_L14_VISION, VIT_L14_TEXT)
    xlmr_b32 = open_clip_xlmr_base_b32()
    return {
        "capivara": xlmr_b32,
        "openclip-xlmr-b32": xlmr_b32,
        "openclip-vit-b16-laion2b": open_clip_builtin("ViT-B-16"),
        "altclip": altclip(),
        "cft-clip": large,
        "openai-vit-l14": large,
        "openai-vit-b32": clip(VIT_B32_VISION, VIT_B32_TEXT),
        "siglip-base": siglip(SIGLIP_B16_VISION, SIGLIP_B16_TEXT),
    }


def main() -> None:
    logging.getLogger().setLevel(logging.ERROR)  # open_clip: "no pretrained weights loaded" is the point here
    for name, count in registered().items():
        print(f"{name:26s} {count:>13,d}")


if __name__ == "__main__":
    main()
