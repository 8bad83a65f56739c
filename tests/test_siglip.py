"""SigLIP and SigLIP 2 through the transformers backend, on tiny random models saved in the hub's on-disk form
with their real tokenizers (SiglipTokenizer over a SentencePiece model trained here; SigLIP 2's Gemma
tokenizer), checked against the model card's own snippet run directly through transformers."""

import shutil

import pytest
import torch
import torch.nn.functional as F

import standins
from benchmark import models
from benchmark.cache_keys import model_identity
from benchmark.errors import ClipbenchError
from benchmark.models.catalog import model_registry
from helpers import drawn_image, write_tiny_naflex, write_tiny_siglip

TEXTS = ["A photo of two Cats!", "a drawing of a blue star", "A GREEN square, on a white background.",
         "a photo of the number seven"]
LONG = " ".join(["a small yellow triangle next to a red circle"] * 12)  # more than 64 tokens: truncated


@pytest.fixture(scope="module")
def siglip_dir(tmp_path_factory):
    return write_tiny_siglip(tmp_path_factory.mktemp("siglip") / "tiny-siglip")


@pytest.fixture(scope="module")
def siglip2_dir(tmp_path_factory):
    return write_tiny_siglip(tmp_path_factory.mktemp("siglip2") / "tiny-siglip2", seed=1, gemma=True)


def images():
    """Not square, so that a crop and a squash would differ."""
    return [drawn_image(seed).resize((48, 30)) for seed in range(3)]


def load(folder):
    return models.load(models.resolve(f"hf:{folder}"), torch.device("cpu"), "fp32")


def ours(encoder, pictures, texts):
    return encoder.encode_images(torch.stack([encoder.preprocess(im) for im in pictures])), encoder.encode_texts(texts)


def model_card(folder, pictures, texts, **text_options):
    """The model card: processor(text, images, padding="max_length"), model(**inputs) -> logits_per_image."""
    from transformers import AutoModel, AutoProcessor

    model = AutoModel.from_pretrained(folder).eval()
    processor = AutoProcessor.from_pretrained(folder)
    options = {"padding": "max_length", **text_options}
    with torch.no_grad():
        out = model(**processor(text=texts, images=pictures, return_tensors="pt", **options))
    scale, bias = model.logit_scale.exp().item(), model.logit_bias.item()
    return out, (out.logits_per_image - bias) / scale  # the cosine similarities


def check_equal_to_card(encoder, folder, texts, card_texts):
    pictures = images()
    image_rows, text_rows = ours(encoder, pictures, texts)
    out, cosines = model_card(folder, pictures, card_texts, truncation=True)
    assert torch.allclose(image_rows, F.normalize(out.image_embeds, dim=-1), atol=1e-5)
    assert torch.allclose(text_rows, F.normalize(out.text_embeds, dim=-1), atol=1e-5)
    assert torch.allclose(image_rows @ text_rows.T, cosines, atol=1e-5)
    assert torch.equal((image_rows @ text_rows.T).argsort(dim=1), cosines.argsort(dim=1))
    assert (text_rows[0] - text_rows[1]).abs().max() > 1e-3  # the texts really differ, so the checks can fail


def test_siglip_embeds_as_its_model_card(siglip_dir):
    encoder = load(siglip_dir)
    assert encoder.info["class"] == "SiglipModel"
    assert encoder.info["text_input"] == {"padding": "max_length", "max_length": 64, "truncation": True,
                                          "attention_mask": False, "lowercase": False}
    # in the disk cache's key: texts embedded before this rule (padding=True) are never read back for it
    assert model_identity(encoder.info)["text_input"] == encoder.info["text_input"]
    check_equal_to_card(encoder, siglip_dir, TEXTS + [LONG], TEXTS + [LONG])


def test_siglip2_fixed_resolution_lowercases_its_texts(siglip2_dir):
    """SigLIP 2 (fixed resolution) is a SiglipModel with a Gemma tokenizer, which keeps case; it was trained on
    lowercased text, so texts are lowercased here (the card's snippet with lowercased texts)."""
    encoder = load(siglip2_dir)
    assert type(encoder.processor.tokenizer).__name__ == "GemmaTokenizer"
    assert encoder.info["text_input"]["lowercase"] is True
    check_equal_to_card(encoder, siglip2_dir, TEXTS + [LONG], [text.lower() for text in TEXTS + [LONG]])
    _, as_written = model_card(siglip2_dir, images(), TEXTS, truncation=True)
    _, lowered = model_card(siglip2_dir, images(), [text.lower() for text in TEXTS], truncation=True)
    assert (as_written[:, 0] - lowered[:, 0]).abs().max() > 1e-4  # case changes the numbers: the lowercasing matters


@pytest.mark.parametrize("which", ["siglip", "siglip2"])
def test_a_text_embeds_the_same_alone_or_beside_a_longer_one(which, siglip_dir, siglip2_dir):
    """Padding to the longest text of a batch (padding=True, what CLIP models get) would change the last position
    SigLIP pools: the short text would embed differently beside the long one. Padded to max_length, it does not."""
    folder = siglip_dir if which == "siglip" else siglip2_dir
    encoder = load(folder)
    alone = encoder.encode_texts([TEXTS[1]])[0]
    beside = encoder.encode_texts([TEXTS[1], LONG])[0]
    assert torch.allclose(alone, beside, atol=1e-6)
    out, _ = model_card(folder, images()[:1], [TEXTS[1].lower()], padding=True, truncation=True)
    assert (F.normalize(out.text_embeds[0], dim=-1) - alone).abs().max() > 1e-3  # padding=True, alone: unpadded, another embedding


def test_no_attention_mask_even_when_the_tokenizer_returns_one(siglip_dir):
    """The hub's SigLIP tokenizers return input_ids alone, as big_vision feeds its text tower; one re-saved
    without that setting returns an attention_mask, which would change the pooled last (padding) position."""
    from transformers import AutoModel

    encoder = load(siglip_dir)
    tokenizer = encoder.processor.tokenizer
    assert list(tokenizer(TEXTS[:1])) == ["input_ids"]  # the stand-in's tokenizer is as the hub's
    expected = encoder.encode_texts(TEXTS)
    tokenizer.model_input_names = ["input_ids", "attention_mask"]
    assert torch.allclose(encoder.encode_texts(TEXTS), expected, atol=1e-6)
    masked = tokenizer(TEXTS, padding="max_length", max_length=64, truncation=True, return_tensors="pt")
    with torch.no_grad():
        out = AutoModel.from_pretrained(siglip_dir).eval().get_text_features(**masked)
    assert (F.normalize(out.pooler_output, dim=-1) - expected).abs().max() > 1e-3  # the mask would matter


def test_images_are_squashed_by_the_processor_crop_or_not(siglip_dir):
    """SiglipImageProcessor resizes to its square size without a crop; a task's centre crop (the model's own
    transform) and its squash (center_crop = false) are then one and the same transform."""
    from transformers import AutoProcessor

    encoder = load(siglip_dir)
    picture = images()[0]
    expected = AutoProcessor.from_pretrained(siglip_dir)(images=picture, return_tensors="pt")["pixel_values"][0]
    assert expected.shape == (3, 32, 32)
    for center_crop in (True, False):
        assert torch.equal(encoder.transform(center_crop)(picture), expected)
    assert encoder.describe_transform(True) == encoder.describe_transform(False)
    assert encoder.input_geometry() == ((32, 32), (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))


def test_a_naflex_model_is_refused_in_one_line(tmp_path):
    folder = write_tiny_naflex(tmp_path / "tiny-naflex")
    with pytest.raises(ClipbenchError) as refused:
        load(folder)
    message = str(refused.value)
    assert "\n" not in message and str(folder) in message and "NaFlex" in message and refused.value.exit_code == 2


def test_a_context_length_other_than_the_positions_is_refused(siglip_dir):
    spec = models.resolve(f"hf:{siglip_dir}").model_copy(update={"context_length": 77})
    with pytest.raises(ClipbenchError, match="context_length 77 differs from the model's 64"):
        models.load(spec, torch.device("cpu"), "fp32")


def test_the_registered_spec_loads_offline_from_the_hub_cache(siglip_dir, tmp_path, monkeypatch):
    """Through the real loader and huggingface_hub's cache lookup, offline, from the stand-in placed in a hub cache
    under the pinned commit (test_models.py runs it through the command line with $HF_HUB_CACHE as well)."""
    import huggingface_hub.constants

    spec = model_registry().get("siglip-base")
    assert (spec.backend, spec.id, spec.licence, spec.languages) == (
        "transformers", "google/siglip-base-patch16-224", "apache-2.0", ["en"])
    assert spec.revision == "7fd15f0689c79d79e38b1c2e2e2370a7bf2761ed"
    cache = tmp_path / "hub"
    snapshot = standins.snapshot(cache, spec.id)
    assert snapshot.name == spec.revision  # the stand-in sits under the pinned commit, as the hub cache would hold it
    shutil.copytree(siglip_dir, snapshot, dirs_exist_ok=True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))  # what $HF_HUB_CACHE sets
    encoder = models.load(models.resolve("siglip-base"), torch.device("cpu"), "fp32")
    assert (encoder.info["revision"], encoder.info["class"]) == (spec.revision, "SiglipModel")
    assert encoder.info["checkpoint"] == str(snapshot / "model.safetensors")
    assert torch.allclose(encoder.encode_texts(TEXTS), load(siglip_dir).encode_texts(TEXTS), atol=1e-6)


def test_a_siglip_model_in_memory_gets_its_text_rules(siglip2_dir, tmp_path):
    """clipbench.evaluate wraps a transformers model handed in with the same family rules as a loaded one: a SigLIP 2
    in memory scores as `clipbench run --model hf:DIR` and records the same text input."""
    import clipbench
    from transformers import AutoModel, AutoProcessor

    from benchmark.cli import run_app
    from benchmark.results import read_all

    out = tmp_path / "cli"
    assert run_app(["run", "--model", f"hf:{siglip2_dir}", "--task", "shapes-captions", "--limit", "20", "--seed", "1",
                    "--num-workers", "0", "--no-cache", "--output", str(out)]) == 0
    [ran] = read_all([out])
    model, processor = AutoModel.from_pretrained(siglip2_dir), AutoProcessor.from_pretrained(siglip2_dir)
    [result] = clipbench.evaluate(model, processor=processor, tasks="shapes-captions", limit=20, seed=1, num_workers=0)
    assert result.metrics == ran.metrics
    assert result.model.model_extra["text_input"] == ran.model.model_extra["text_input"]
    assert ran.model.model_extra["text_input"]["padding"] == "max_length"

