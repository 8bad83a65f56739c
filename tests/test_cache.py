"""The embedding cache on disk (benchmark.cache): hits and misses, keys, corrupt files, two processes filling one
entry, chunks and resume. The store itself is tested on plain tensors from a counting compute function; the
embedding loop with a stand-in encoder; the command line with the bundled model."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

from benchmark.cache import DiskCache, read_file, read_meta
from benchmark.cache_keys import canonical, digest_of, image_key, model_identity, preprocessing_identity, text_key
from benchmark.embed import EmbeddingCache, embed_images
from benchmark.prompts import Prompts

ROOT = Path(__file__).resolve().parents[1]
CPU = torch.device("cpu")
MODEL = {"backend": "open_clip", "id": "ViT-B-32", "checkpoint_sha256": "ab" * 32}


def rows_of(block: range, dim: int = 4) -> torch.Tensor:
    """Row i is i, i + 0.5, ...: any misplaced or missing row shows."""
    return torch.arange(block.start, block.stop, dtype=torch.float32)[:, None] + torch.arange(dim) / 2


class Counting:
    def __init__(self):
        self.blocks: list[range] = []

    def __call__(self, block: range) -> torch.Tensor:
        self.blocks.append(block)
        return rows_of(block)

    @property
    def rows(self) -> int:
        return sum(len(b) for b in self.blocks)


def key(**changes) -> dict:
    fields = {"model": MODEL, "preprocessing": "Compose(Resize(224))", "fingerprint": "f" * 64, "n_images": 10,
              "precision": "fp32", "device": CPU, "batch_size": 4, **changes}
    return image_key(**fields)


def store(tmp_path, lines: list[str] | None = None) -> DiskCache:
    sink = lines if lines is not None else []
    return DiskCache.open(tmp_path / "cache", warn=sink.append)


# ---------------------------------------------------------------------------------------------- keys

@pytest.mark.parametrize("change", [
    {"batch_size": 8}, {"precision": "bf16"}, {"preprocessing": "Compose(Resize(256))"}, {"fingerprint": "e" * 64},
    {"n_images": 11}, {"model": {**MODEL, "checkpoint_sha256": "cd" * 32}}, {"device": torch.device("meta")},
])
def test_everything_that_changes_the_numbers_changes_the_key(change):
    assert digest_of(key(**change)) != digest_of(key())
    assert digest_of(key()) == digest_of(key())


def test_text_keys_follow_the_exact_texts_and_the_averaging_rule():
    base = text_key("classifier", MODEL, ["a cat", "a dog"], "fp32", CPU, 256, averaging="normalise-then-mean")
    assert digest_of(base) == digest_of(text_key("classifier", MODEL, ["a cat", "a dog"], "fp32", CPU, 256,
                                                 averaging="normalise-then-mean"))
    for other in (text_key("classifier", MODEL, ["a cat", "a dog "], "fp32", CPU, 256, averaging="normalise-then-mean"),
                  text_key("classifier", MODEL, ["a cat", "a dog"], "fp32", CPU, 256, averaging="mean-then-normalise"),
                  text_key("texts", MODEL, ["a cat", "a dog"], "fp32", CPU, 256, normalise=True)):
        assert digest_of(other) != digest_of(base)


def test_weights_without_a_hash_or_a_commit_are_not_keyed(tmp_path):
    assert model_identity({"backend": "transformers", "id": "org/name", "revision": None, "checkpoint_sha256": None}) is None
    assert model_identity({"backend": "transformers", "id": str(tmp_path), "revision": None, "checkpoint_sha256": None}) is None
    hub = model_identity({"backend": "transformers", "id": "org/name", "revision": "c" * 40, "checkpoint_sha256": None})
    assert hub["revision"] == "c" * 40


def test_a_model_folder_is_keyed_by_its_config_files_too(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"weights")
    (tmp_path / "config.json").write_text('{"quick_gelu": false}')
    info = {"backend": "open_clip", "id": f"local-dir:{tmp_path}", "checkpoint": str(tmp_path / "model.safetensors"),
            "checkpoint_sha256": "ab" * 32}
    before = model_identity(info)
    assert before["id"] == "<local folder>"  # moving the folder keeps its entries
    (tmp_path / "config.json").write_text('{"quick_gelu": true}')
    assert model_identity(info) != before


def test_a_preprocessing_described_by_an_address_is_not_keyed():
    assert preprocessing_identity(repr(lambda image: image)) is None
    assert preprocessing_identity("Compose(\n    Resize(size=64)\n)") == "Compose(\n    Resize(size=64)\n)"


# ---------------------------------------------------------------------------------------------- the store

def test_miss_then_hit(tmp_path):
    cache, compute = store(tmp_path), Counting()
    first = cache.fill(key(), 10, compute, chunk_size=4)
    assert not first.hit and first.computed == 10 and torch.equal(first.embeddings, rows_of(range(10)))
    again = cache.fill(key(), 10, compute, chunk_size=4)
    assert again.hit and again.computed == 0 and torch.equal(again.embeddings, first.embeddings)
    assert compute.rows == 10
    assert not cache.chunk_dir(key()).exists()  # chunks are removed once the entry is whole
    assert cache.fill(key(batch_size=2), 10, compute, chunk_size=4).computed == 10  # another key: a miss


def test_cache_files_follow_the_umask(tmp_path):
    mask = os.umask(0o027)
    try:
        cache = store(tmp_path)
        cache.fill(key(), 10, Counting(), chunk_size=100)
    finally:
        os.umask(mask)
    assert cache.entry_path(key()).stat().st_mode & 0o777 == 0o640


def test_a_small_entry_is_written_whole_without_chunks(tmp_path, monkeypatch):
    cache, written = store(tmp_path), []
    import benchmark.cache

    real = benchmark.cache.write_file
    monkeypatch.setattr(benchmark.cache, "write_file", lambda path, *rest: (written.append(path), real(path, *rest)))
    cache.fill(key(), 10, Counting(), chunk_size=16)
    assert written == [cache.entry_path(key())]


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def flip_last_byte(path: Path) -> None:  # in the tensor's data, past the header
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))


def flip_a_header_byte(path: Path) -> None:  # inside the key that the header holds
    data = bytearray(path.read_bytes())
    at = data.index(b"fp32")
    data[at:at + 4] = b"fp16"
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage, reason", [(truncate, "not a whole safetensors file"),
                                            (flip_last_byte, "do not match their checksum"),
                                            (flip_a_header_byte, "another key")])
def test_a_corrupt_entry_is_reported_in_one_line_and_recomputed(tmp_path, damage, reason):
    lines: list[str] = []
    cache, compute = store(tmp_path, lines), Counting()
    cache.fill(key(), 10, compute, chunk_size=100)
    damage(cache.entry_path(key()))
    again = cache.fill(key(), 10, compute, chunk_size=100)
    assert not again.hit and again.computed == 10 and torch.equal(again.embeddings, rows_of(range(10)))
    assert len(lines) == 1 and "\n" not in lines[0], lines
    assert lines[0].startswith("warning: ") and str(cache.entry_path(key())) in lines[0] and reason in lines[0], lines
    assert "recomputed" in lines[0]
    assert cache.fill(key(), 10, compute, chunk_size=100).hit  # rewritten whole
    assert len(lines) == 1


def test_an_entry_under_another_name_is_not_used(tmp_path):
    lines: list[str] = []
    cache = store(tmp_path, lines)
    cache.fill(key(batch_size=2), 10, Counting(), chunk_size=100)
    os.replace(cache.entry_path(key(batch_size=2)), cache.entry_path(key()))
    found = cache.fill(key(), 10, Counting(), chunk_size=100)
    assert not found.hit and len(lines) == 1 and "another key" in lines[0]


def test_a_corrupt_chunk_is_recomputed_alone(tmp_path):
    lines: list[str] = []
    cache = store(tmp_path, lines)
    # an earlier run finished three chunks of four rows, then stopped
    for start in (0, 4, 8):
        block = range(start, min(start + 4, 10))
        cache._write(cache.chunk_dir(key()) / f"{block.start:010d}-{block.stop:010d}.safetensors", rows_of(block),
                     {"kind": "images", "key": canonical(key()),
                      "start": str(block.start), "stop": str(block.stop)})
    truncate(cache.chunk_dir(key()) / "0000000004-0000000008.safetensors")
    compute = Counting()
    found = cache.fill(key(), 10, compute, chunk_size=4)
    assert compute.blocks == [range(4, 8)]
    assert torch.equal(found.embeddings, rows_of(range(10))) and found.computed == 4 and not found.hit
    assert len(lines) == 1 and "chunk" in lines[0] and "0000000004-0000000008" in lines[0]


def test_an_unwritable_cache_is_one_warning_and_no_cache(tmp_path):
    (tmp_path / "file").write_text("not a folder")
    lines: list[str] = []
    assert DiskCache.open(tmp_path / "file" / "cache", warn=lines.append) is None
    assert len(lines) == 1 and lines[0].startswith("warning: ") and str(tmp_path / "file" / "cache") in lines[0]
    assert "--no-cache" in lines[0]


def test_a_failed_write_is_one_warning_and_the_run_goes_on(tmp_path, monkeypatch):
    import benchmark.cache

    lines: list[str] = []
    cache = store(tmp_path, lines)

    def full(*_):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(benchmark.cache, "write_file", full)
    found = cache.fill(key(), 10, Counting(), chunk_size=2)
    assert torch.equal(found.embeddings, rows_of(range(10)))
    assert len(lines) == 1 and "No space left on device" in lines[0]


FILLER = """
import sys, time, torch
from pathlib import Path
from benchmark.cache import DiskCache
from benchmark.cache_keys import image_key

folder, me = Path(sys.argv[1]), sys.argv[2]
key = image_key({"id": "x", "checkpoint_sha256": "ab"}, "p", "f", 12, "fp32", torch.device("cpu"), 2)
cache = DiskCache.open(folder / "cache")

def compute(block):
    if block.start == 0:  # a barrier: both processes are inside the first chunk before either writes it
        (folder / f"ready-{me}").touch()
        for _ in range(6000):
            if len(list(folder.glob("ready-*"))) == 2:
                break
            time.sleep(0.01)
    with open(folder / f"computed-{me}", "a") as log:
        log.write(f"{block.start}\\n")
    return torch.arange(block.start, block.stop, dtype=torch.float32)[:, None].repeat(1, 3)

filled = cache.fill(key, 12, compute, chunk_size=4)
assert torch.equal(filled.embeddings[:, 0], torch.arange(12, dtype=torch.float32)), filled.embeddings
print(filled.computed)
"""


def test_two_processes_filling_one_entry_both_finish_with_the_whole_entry(tmp_path):
    runs = [subprocess.Popen([sys.executable, "-c", FILLER, str(tmp_path), name], cwd=ROOT, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True) for name in ("a", "b")]
    outputs = [run.communicate(timeout=300) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs
    assert all(not err.strip() for _, err in outputs), outputs  # no warning: nothing either saw was unusable
    cache = DiskCache(tmp_path / "cache")
    entry = cache.entry_path(image_key({"id": "x", "checkpoint_sha256": "ab"}, "p", "f", 12, "fp32", CPU, 2))
    whole = read_file(entry, read_meta(entry)["key"])
    assert torch.equal(whole[:, 0], torch.arange(12, dtype=torch.float32))
    assert not list((tmp_path / "cache").rglob("*.tmp"))


# ---------------------------------------------------------------------------------------------- the embedding loop

class Source:
    location = "memory"
    fingerprint = "1" * 64

    def __len__(self):
        return 10

    def open(self, index):
        return Image.new("RGB", (4, 4), (index * 20, 255 - index * 20, 7 * index))

    def describe(self, index):
        return f"image {index}"


class Encoder:
    name = "stand-in"
    device = CPU
    precision = "fp32"
    info = MODEL

    @staticmethod
    def preprocess(image):
        return torch.tensor(list(image.getpixel((0, 0))), dtype=torch.float32)

    def transform(self, center_crop=True):
        return self.preprocess

    def describe_transform(self, center_crop=True):
        return f"first pixel, center_crop={center_crop}"

    @staticmethod
    def encode_images(pixels):
        return torch.nn.functional.normalize(pixels + 1.0, dim=-1)

    @staticmethod
    def encode_texts(texts, normalise=True):
        features = torch.tensor([[len(t), t.count("a"), 1.0] for t in texts])
        return torch.nn.functional.normalize(features, dim=-1) if normalise else features


def test_chunks_are_whole_batches_of_the_one_compute_function_and_give_the_unchunked_rows(tmp_path):
    blocks = []

    def recording(*args, indices, **kwargs):
        blocks.append(indices)
        return embed_images(*args, indices=indices, **kwargs)

    cache = EmbeddingCache(store(tmp_path), chunk_size=5, embed=recording)
    found = cache.images(Encoder(), Source(), batch_size=2, num_workers=0)
    assert blocks == [range(0, 6), range(6, 10)]  # 5 rounded up to whole batches of 2
    assert torch.equal(found.embeddings, embed_images(Encoder(), Source(), 2, 0))
    assert (found.from_disk, found.embedded, found.reused) == (False, 10, False)
    again = EmbeddingCache(store(tmp_path), chunk_size=5, embed=recording).images(Encoder(), Source(), 2, 0)
    assert (again.from_disk, again.embedded, len(blocks)) == (True, 0, 2)
    assert torch.equal(again.embeddings, found.embeddings)
    reused = cache.images(Encoder(), Source(), 2, 0)  # the same run, another task: from memory
    assert (reused.reused, reused.embedded, reused.from_disk) == (True, 0, False)


def test_the_classifier_and_texts_come_from_the_disk_cache_on_the_second_run(tmp_path):
    prompts = Prompts(["cat", "dog"], ["a {c}.", "an {c}!"], "memory")
    first = EmbeddingCache(store(tmp_path)).classifier(Encoder(), prompts, 8, "normalise-then-mean")
    second = EmbeddingCache(store(tmp_path)).classifier(Encoder(), prompts, 8, "normalise-then-mean")
    assert first.from_disk is False and second.from_disk is True and torch.equal(first.embeddings, second.embeddings)
    assert EmbeddingCache(store(tmp_path)).classifier(Encoder(), prompts, 8, "mean-then-normalise").from_disk is False
    texts = ["a cat", "a dog"]
    assert EmbeddingCache(store(tmp_path)).texts(Encoder(), texts, 8).from_disk is False
    assert EmbeddingCache(store(tmp_path)).texts(Encoder(), texts, 8).from_disk is True
    assert EmbeddingCache(None).texts(Encoder(), texts, 8).from_disk is None


def test_an_unkeyable_encoder_runs_without_the_disk_cache_after_one_warning(tmp_path):
    lines: list[str] = []
    encoder = Encoder()
    encoder.info = {"backend": "transformers", "id": "org/name", "revision": None, "checkpoint_sha256": None}
    cache = EmbeddingCache(store(tmp_path, lines))
    assert cache.images(encoder, Source(), 2, 0).from_disk is None
    assert cache.texts(encoder, ["a"], 8).from_disk is None
    assert len(lines) == 1 and "cannot be identified" in lines[0]
