"""The transformers backend on a tiny CLIPModel saved in the hub's on-disk form, checked against the
model card's own recipe (get_*_features on the processor's output)."""

import pytest
import torch
import torch.nn.functional as F

from benchmark import models
from benchmark.data import shapes
from helpers import clipbench_here as clipbench, read_results, write_tiny_hf_clip, write_wds

TEXTS = ["a photo of a red circle.", "uma foto de um círculo vermelho.", "一张红色圆形的照片。"]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return write_tiny_hf_clip(tmp_path_factory.mktemp("hf") / "tiny-clip")


def card_recipe(model_dir, images, texts):
    from transformers import AutoProcessor, CLIPModel

    model = CLIPModel.from_pretrained(model_dir).eval()
    processor = AutoProcessor.from_pretrained(model_dir)
    with torch.no_grad():
        image_out = model.get_image_features(**processor(images=images, return_tensors="pt"))
        text_out = model.get_text_features(**processor(text=texts, padding=True, return_tensors="pt"))
    pooled = lambda out: out if isinstance(out, torch.Tensor) else out.pooler_output  # noqa: E731
    return F.normalize(pooled(image_out), dim=-1), F.normalize(pooled(text_out), dim=-1)


def test_embeddings_equal_the_model_card_recipe(model_dir):
    images = [img for img, _ in shapes.classification_samples(6, seed=5)]
    encoder = models.load(models.resolve(f"hf:{model_dir}"), torch.device("cpu"), "fp32")
    ours_images = encoder.encode_images(torch.stack([encoder.preprocess(img) for img in images]))
    ours_texts = encoder.encode_texts(TEXTS)
    ref_images, ref_texts = card_recipe(model_dir, images, TEXTS)
    assert ours_images.dtype == torch.float32 and ours_images.shape == (6, 16)
    assert torch.allclose(ours_images.norm(dim=-1), torch.ones(6), atol=1e-6)
    assert torch.allclose(ours_images, ref_images, atol=1e-5)
    assert torch.allclose(ours_texts, ref_texts, atol=1e-5)
    assert encoder.info["backend"] == "transformers" and encoder.info["checkpoint_sha256"]


def test_run_on_a_webdataset_directory(model_dir, tmp_path):
    samples = shapes.classification_samples(24, seed=8)
    root = write_wds(tmp_path / "wds", [{"image": img, "cls": label} for img, label in samples],
                     classnames=shapes.class_names("en"), templates=["a photo of a {c}."])
    out = tmp_path / "out"
    done = clipbench("run", "--model", f"hf:{model_dir}", "--task", str(root), "--output", str(out), "--num-workers", "0")
    assert done.returncode == 0, done.stderr
    [result] = read_results(out)
    images, weights = card_recipe(model_dir, [img for img, _ in samples],
                                  [f"a photo of a {name}." for name in shapes.class_names("en")])
    labels = torch.tensor([label for _, label in samples])
    expected = ((images @ weights.T).argmax(1) == labels).sum().item() / 24
    assert result["metrics"]["acc1"] == pytest.approx(expected, abs=1e-12)
    assert result["model"]["backend"] == "transformers"


def test_the_disk_cache_keys_a_transformers_model_by_its_processor_not_by_an_address(model_dir, tmp_path):
    from benchmark.cache import DiskCache
    from benchmark.cache_keys import preprocessing_identity
    from benchmark.data.base import InMemoryImages
    from benchmark.embed import EmbeddingCache

    source = InMemoryImages([img for img, _ in shapes.classification_samples(6, seed=5)], "memory")
    first, second = (models.load(models.resolve(f"hf:{model_dir}"), torch.device("cpu"), "fp32") for _ in range(2))
    assert preprocessing_identity(repr(first.transform(False))) is None  # a bound method, named by its address
    crop, squash = first.describe_transform(True), first.describe_transform(False)
    assert crop != squash and preprocessing_identity(crop) and preprocessing_identity(squash)
    assert second.describe_transform(False) == squash
    lines = []
    made = EmbeddingCache(DiskCache.open(tmp_path, lines.append)).images(first, source, 4, 0, center_crop=False)
    read = EmbeddingCache(DiskCache.open(tmp_path, lines.append)).images(second, source, 4, 0, center_crop=False)
    assert (made.from_disk, read.from_disk, lines) == (False, True, [])
    assert torch.equal(made.embeddings, read.embeddings)
