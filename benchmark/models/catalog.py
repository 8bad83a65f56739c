"""The registered models, one spec each.

Hub revisions: this project's machines cannot reach the hub, so no commit below was checked here; the
specs leave `revision` unset (the hub's `main`) and every result records the commit actually loaded,
read from the hub cache. Pin a commit in `revision` once it has been verified.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

from ..errors import ClipbenchError
from ..paths import weights_dir
from ..registry import Registry
from ..specs import ModelSpec


def specs() -> list[ModelSpec]:
    return [
        ModelSpec(
            name="tiny-shapes",
            backend="open_clip",
            id=f"local-dir:{weights_dir('tiny-shapes')}",
            languages=["en", "pt", "zh"],
            licence="MIT",
            notes="bundled: a tiny ViT trained by `python -m benchmark.dev.train_tiny` on drawn shapes",
        ),
        ModelSpec(
            name="capivara",
            backend="open_clip",
            id="hf-hub:hiaac-nlp/CAPIVARA",
            languages=["pt"],
            licence="MIT",
            context_length=77,
            parameters=366_121_473,  # python -m benchmark.dev.sizes
            notes="CAPIVARA (arXiv:2310.13683): OpenCLIP ViT-B/32 + XLM-R base fine-tuned on Portuguese captions",
        ),
        ModelSpec(
            name="openclip-xlmr-b32",
            backend="open_clip",
            id="hf-hub:laion/CLIP-ViT-B-32-xlm-roberta-base-laion5B-s13B-b90k",
            languages=["en", "pt", "zh"],
            licence="MIT",
            context_length=77,
            parameters=366_121_473,  # python -m benchmark.dev.sizes
            notes="open_clip xlm-roberta-base-ViT-B-32 / laion5b_s13b_b90k, read from the repository that tag points at; CAPIVARA's baseline",
        ),
        ModelSpec(
            name="openclip-vit-b16-laion2b",
            backend="open_clip",
            id="hf-hub:laion/CLIP-ViT-B-16-laion2B-s34B-b88K",
            languages=["en"],
            licence="MIT",
            context_length=77,
            parameters=149_620_737,  # python -m benchmark.dev.sizes
            notes="OpenCLIP ViT-B/16 trained on LAION-2B",
        ),
        ModelSpec(
            name="altclip",
            backend="transformers",
            id="BAAI/AltCLIP",
            languages=["en", "zh"],
            licence="CreativeML OpenRAIL-M",
            context_length=77,
            parameters=864_186_113,  # python -m benchmark.dev.sizes
            notes="AltCLIPModel + AltCLIPProcessor: CLIP ViT-L/14 image tower, XLM-R large text tower ([CLS] pooled)",
        ),
        ModelSpec(
            name="cft-clip",
            backend="transformers",
            id="humane-lab/CFT-CLIP",
            languages=["en"],
            licence="not stated on the model card",
            context_length=77,
            parameters=427_616_513,  # python -m benchmark.dev.sizes
            notes="CLIPModel ViT-L/14 fine-tuned on news thumbnails (CFT-CLIP); base: openai-vit-l14",
        ),
        ModelSpec(
            name="openai-vit-l14",
            backend="transformers",
            id="openai/clip-vit-large-patch14",
            revision="32bd64288804d66eefd0ccbe215aa642df71cc41",  # as pinned by MTEB (mteb/models/clip_models.py)
            languages=["en"],
            licence="MIT (openai/CLIP repository)",
            context_length=77,
            parameters=427_616_513,  # python -m benchmark.dev.sizes
            notes="OpenAI CLIP ViT-L/14 (224 px)",
        ),
        ModelSpec(
            name="openai-vit-b32",
            backend="transformers",
            id="openai/clip-vit-base-patch32",
            revision="3d74acf9a28c67741b2f4f2ea7635f0aaf6f0268",  # as pinned by MTEB (mteb/models/clip_models.py)
            languages=["en"],
            licence="MIT (openai/CLIP repository)",
            context_length=77,
            parameters=151_277_313,  # python -m benchmark.dev.sizes
            notes="OpenAI CLIP ViT-B/32",
        ),
        ModelSpec(
            name="siglip-base",
            backend="transformers",
            id="google/siglip-base-patch16-224",
            # as pinned by MTEB: embeddings-benchmark/mteb @ 0eb0ea026c672fb61ad64506571aaccdb033c37f,
            # mteb/models/model_implementations/siglip_models.py (siglip_base_patch16_224); not checked against the hub
            revision="7fd15f0689c79d79e38b1c2e2e2370a7bf2761ed",
            languages=["en"],
            licence="apache-2.0",
            context_length=64,
            parameters=203_155_970,  # python -m benchmark.dev.sizes (MTEB's n_parameters says the same)
            notes="SigLIP ViT-B/16, 224 px (SiglipModel + SiglipProcessor): texts padded to 64 tokens, images squashed to 224 x 224",
        ),
    ]


def user_specs(path: Path) -> list[ModelSpec]:
    """Extra models from a TOML file ($CLIPBENCH_MODELS): one [[model]] table per ModelSpec."""
    from pydantic import ValidationError

    from ..specs import describe_validation_error, read_toml

    if not path.is_file():
        raise ClipbenchError(f"CLIPBENCH_MODELS points at {path}, which does not exist; fix or unset it")
    out = []
    for index, raw in enumerate(read_toml(path).get("model", [])):
        try:
            out.append(ModelSpec.model_validate(raw))
        except ValidationError as exc:
            raise ClipbenchError(describe_validation_error(f"{path} [[model]] #{index + 1}", exc)) from None
    return out


def model_registry() -> Registry[ModelSpec]:
    """The registered models and those $CLIPBENCH_MODELS names (read again when it changes: one process may run
    several commands, clipbench.evaluate calls among them)."""
    return _model_registry(os.environ.get("CLIPBENCH_MODELS", ""))


@functools.cache
def _model_registry(extra: str) -> Registry[ModelSpec]:
    registry: Registry[ModelSpec] = Registry("model")
    for spec in specs():
        registry.register(spec.name, spec, origin=__name__)
    if extra:
        for spec in user_specs(Path(extra).expanduser()):
            registry.register(spec.name, spec, origin=extra)
    return registry
