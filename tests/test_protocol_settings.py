"""The protocol-level settings of issue 10: which caption translation CAPIVARA's webdatasets give per language."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from benchmark.errors import ClipbenchError


# ------------------------------------------------------------------------------------------ caption translations

CAPIVARA_TASK = """name = "capivara-wds"
kind = "retrieval"
description = "test only: a webdataset laid out as CAPIVARA's"
languages = ["en", "pt", "xh", "hi"]
split = "val"
metrics = ["t2i_recall@1", "i2t_recall@1", "mean_recall"]
main_score = "mean_recall"

[dataset]
format = "wds-json"
path = "capivara/flickr30k_val"
shards = "*.tar"
"""


def capivara_shard(root: Path) -> list[dict]:
    """flickr30k_val/00000.tar: <key>.jpg + <key>.json, captions-en (2), captions-pt (Marian, Google, Marian,
    Google: CAPIVARA's interleaving), captions-xh and captions-hi (one translation of each English caption)."""
    folder = root / "capivara" / "flickr30k_val"
    folder.mkdir(parents=True)
    records = []
    with tarfile.open(folder / "00000.tar", "w") as archive:
        for i in range(3):
            buffer = io.BytesIO()
            Image.fromarray(np.full((8, 8, 3), 40 * i, dtype=np.uint8)).save(buffer, format="JPEG")
            english = [f"a dog {i}", f"a cat {i}"]
            record = {"image": f"{i}.jpg", "captions-en": english,
                      "captions-pt": [c for e in english for c in (f"marian {e}", f"google {e}")],
                      "captions-xh": [f"xh {e}" for e in english], "captions-hi": [f"hi {e}" for e in english]}
            for ext, payload in (("jpg", buffer.getvalue()), ("json", json.dumps(record).encode())):
                member = tarfile.TarInfo(f"{i:08d}.{ext}")
                member.size = len(payload)
                archive.addfile(member, io.BytesIO(payload))
            records.append(record)
    return records


def test_capivara_webdataset_splits_the_translations_of_portuguese_only(tmp_path):
    """hiaac-nlp/CAPIVARA @ 375bc336d2fe7fdba230c7a3230ab596280bc614 zero_shot_retrieval.py tokenize(): for pt,
    google -> [1::2], marian -> [0::2]; for xh and hi the whole list; english -> captions-en."""
    from benchmark import data as datasets, tasks

    records = capivara_shard(tmp_path / "data")

    def texts(language: str, extra: str = "") -> list[str]:
        task = tmp_path / "capivara-wds.toml"
        task.write_text(CAPIVARA_TASK + extra)
        return datasets.load(tasks.load_task_file(task), language, tmp_path / "data").texts

    def flat(key: str, pick=slice(None)) -> list[str]:
        return [c for r in records for c in r[key][pick]]

    assert texts("pt") == flat("captions-pt", slice(1, None, 2))
    assert texts("pt", 'translation = "marian"\n') == flat("captions-pt", slice(0, None, 2))
    assert texts("pt", 'translation = "all"\n') == flat("captions-pt")
    for language in ("xh", "hi", "en"):
        assert texts(language) == flat(f"captions-{language}"), language
        assert texts(language, 'translation = "marian"\n') == flat(f"captions-{language}"), language
    assert texts("xh", 'interleaved = ["pt", "xh"]\n') == flat("captions-xh", slice(1, None, 2))
    assert texts("pt", "interleaved = []\n") == flat("captions-pt")
    with pytest.raises(ClipbenchError, match="interleaved: 'en' is the source_language"):
        texts("en", 'interleaved = ["en"]\n')
