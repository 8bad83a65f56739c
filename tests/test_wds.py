"""A local CLIP_benchmark-layout webdataset, evaluated with an open_clip architecture and a local
checkpoint through the real command line, checked against an independent computation that uses
open_clip directly and CLIP_benchmark's own metric code."""


import pytest
import torch
import torch.nn.functional as F

from benchmark.data import shapes
from helpers import clipbench_here as clipbench, read_results, write_wds

ARCH = "ViT-S-32-alt"  # the smallest built-in open_clip ViT


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A randomly initialised ViT-S-32-alt saved as safetensors, as a user's own checkpoint would be."""
    import open_clip
    from safetensors.torch import save_file

    torch.manual_seed(0)
    model = open_clip.create_model(ARCH)
    path = tmp_path_factory.mktemp("ckpt") / "vit-s-32-alt.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return path


@pytest.fixture(scope="module")
def classification_dir(tmp_path_factory):
    samples = shapes.classification_samples(40, seed=99)
    root = tmp_path_factory.mktemp("wds") / "shapes-wds"
    write_wds(root, [{"image": img, "cls": label} for img, label in samples], shard_size=15,
              classnames=shapes.class_names("en"), templates=["a photo of a {c}.", "a drawing of a {c}."])
    return root, samples


@pytest.fixture(scope="module")
def retrieval_dir(tmp_path_factory):
    # distinct captions only: identical captions of two images would tie, and ties may break either way
    samples, seen = [], set()
    for image, captions in shapes.caption_samples(80, seed=77):
        if not seen & set(captions["en"]) and len(samples) < 30:
            samples.append((image, captions))
            seen |= set(captions["en"])
    root = tmp_path_factory.mktemp("wds") / "captions-wds"
    write_wds(root, [{"image": img, "txt": caps["en"]} for img, caps in samples], shard_size=12, dataset_type="retrieval")
    return root, samples


def independent_model(checkpoint):
    import open_clip

    model, _, preprocess = open_clip.create_model_and_transforms(ARCH, pretrained=str(checkpoint))
    return model.eval(), preprocess, open_clip.get_tokenizer(ARCH)


def test_classification_directory_matches_independent_computation(checkpoint, classification_dir, tmp_path):
    from clip_benchmark.metrics.zeroshot_classification import zero_shot_classifier
    from sklearn.metrics import balanced_accuracy_score

    root, samples = classification_dir
    out = tmp_path / "out"
    done = clipbench("run", "--model", ARCH, "--pretrained", str(checkpoint), "--task", str(root),
                     "--output", str(out), "--num-workers", "2", "--batch-size", "16")
    assert done.returncode == 0, done.stderr
    [result] = read_results(out)
    assert result["dataset"]["n_images"] == 40 and result["dataset"]["n_classes"] == 16
    assert result["model"]["checkpoint_sha256"] and result["language"] == "en"

    model, preprocess, tokenizer = independent_model(checkpoint)
    with torch.no_grad():
        images = F.normalize(model.encode_image(torch.stack([preprocess(img) for img, _ in samples])), dim=-1)
        weights = zero_shot_classifier(model, tokenizer, shapes.class_names("en"),
                                       ["a photo of a {c}.", "a drawing of a {c}."], "cpu", amp=False)
    logits = 100.0 * images @ weights
    labels = torch.tensor([label for _, label in samples])
    top5 = logits.topk(5, dim=1).indices
    assert result["metrics"]["acc1"] == pytest.approx((logits.argmax(1) == labels).sum().item() / 40, abs=1e-12)
    assert result["metrics"]["acc5"] == pytest.approx((top5 == labels[:, None]).any(1).sum().item() / 40, abs=1e-12)
    assert result["metrics"]["mean_per_class_recall"] == pytest.approx(
        balanced_accuracy_score(labels.numpy(), logits.argmax(1).numpy()), abs=1e-12)


def test_retrieval_directory_matches_clip_benchmark(checkpoint, retrieval_dir, tmp_path):
    from clip_benchmark.metrics.zeroshot_retrieval import recall_at_k

    root, samples = retrieval_dir
    out = tmp_path / "out"
    done = clipbench("run", "--model", ARCH, "--pretrained", str(checkpoint), "--task", str(root),
                     "--output", str(out), "--num-workers", "0")
    assert done.returncode == 0, done.stderr
    [result] = read_results(out)
    assert result["dataset"]["n_images"] == 30 and result["dataset"]["n_texts"] == 60

    model, preprocess, tokenizer = independent_model(checkpoint)
    texts = [t for _, caps in samples for t in caps["en"]]
    owners = torch.arange(30).repeat_interleave(2)
    with torch.no_grad():
        images = F.normalize(model.encode_image(torch.stack([preprocess(img) for img, _ in samples])), dim=-1)
        text_emb = F.normalize(model.encode_text(tokenizer(texts)), dim=-1)
    scores = text_emb @ images.T
    positive = torch.zeros_like(scores, dtype=torch.bool)
    positive[torch.arange(60), owners] = True
    for k in (1, 5, 10):
        t2i = (recall_at_k(scores, positive, k) > 0).float().mean().item()
        i2t = (recall_at_k(scores.T, positive.T, k) > 0).float().mean().item()
        assert result["metrics"][f"t2i_recall@{k}"] == pytest.approx(t2i, abs=1e-6)
        assert result["metrics"][f"i2t_recall@{k}"] == pytest.approx(i2t, abs=1e-6)


def test_checkpoint_that_does_not_fit_the_architecture(checkpoint, classification_dir, tmp_path):
    root, _ = classification_dir
    out = tmp_path / "out"
    done = clipbench("run", "--model", "ViT-S-16-alt", "--pretrained", str(checkpoint), "--task", str(root), "--output", str(out))
    assert done.returncode == 1
    assert "does not fit architecture 'ViT-S-16-alt'" in done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert not out.exists() or not list(out.rglob("*.json"))
