"""The image embedding loop: a block of indices gives exactly those rows of the whole run."""

from __future__ import annotations

import torch
from PIL import Image

from benchmark.embed import embed_images


class Source:
    location = "memory"

    def __len__(self):
        return 10

    def open(self, index):
        return Image.new("RGB", (4, 4), (index * 20, 255 - index * 20, 7 * index))

    def describe(self, index):
        return f"image {index}"


class Encoder:
    device = torch.device("cpu")

    @staticmethod
    def preprocess(image):
        return torch.tensor(list(image.getpixel((0, 0))), dtype=torch.float32)

    @staticmethod
    def encode_images(pixels):
        return torch.nn.functional.normalize(pixels + 1.0, dim=-1)


def test_indices_give_those_rows_in_order():
    whole = embed_images(Encoder(), Source(), batch_size=3, num_workers=0)
    assert whole.shape == (10, 3)
    assert len(set(map(tuple, whole.tolist()))) == 10
    block = embed_images(Encoder(), Source(), batch_size=2, num_workers=0, indices=range(3, 8))
    assert torch.equal(block, whole[3:8])
    assert embed_images(Encoder(), Source(), num_workers=0, indices=range(4, 4)).numel() == 0
