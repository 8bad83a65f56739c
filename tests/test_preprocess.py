"""center_crop = false (ELEVATER's KITTI-Distance): the image is squashed to the input size, not cropped."""

import numpy as np
import pytest
import torch
from PIL import Image

import standins
from benchmark import models
from helpers import write_tiny_hf_clip


def wide_image():
    """Left third red, middle green, right third blue: a centre crop keeps only green."""
    pixels = np.zeros((40, 120, 3), dtype=np.uint8)
    pixels[:, :40, 0] = 255
    pixels[:, 40:80, 1] = 255
    pixels[:, 80:, 2] = 255
    return Image.fromarray(pixels)


@pytest.fixture(scope="module")
def encoders(tmp_path_factory):
    root = tmp_path_factory.mktemp("pre")
    standins.open_clip_vit(root / "hub", "org/tiny")
    [folder] = list((root / "hub").glob("models--org--tiny/snapshots/*"))
    open_clip_encoder = models.load(models.resolve(f"local-dir:{folder}"), torch.device("cpu"), "fp32")
    hf_encoder = models.load(models.resolve(f"hf:{write_tiny_hf_clip(root / 'hf')}"), torch.device("cpu"), "fp32")
    return [open_clip_encoder, hf_encoder]


@pytest.mark.parametrize("which", [0, 1])
def test_squash_keeps_the_whole_image(encoders, which):
    encoder = encoders[which]
    cropped = encoder.transform(center_crop=True)(wide_image())
    squashed = encoder.transform(center_crop=False)(wide_image())
    assert cropped.shape == squashed.shape == (3, 32, 32)
    # channel means after undoing nothing: compare red vs blue presence on the left and right edges
    left_crop, left_squash = cropped[:, :, :4].mean(dim=(1, 2)), squashed[:, :, :4].mean(dim=(1, 2))
    assert left_squash[0] > left_squash[1] + 1.0  # squashed: the left edge is red
    assert left_crop[1] > left_crop[0] + 1.0  # cropped: the left edge is the green middle
    assert encoder.transform(True) is encoder.preprocess
