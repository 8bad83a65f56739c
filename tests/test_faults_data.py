"""Fault injection into the dataset readers, through the real command line: cut and empty shards, a
miscounted split, zero-byte labels, text that is not UTF-8 in every format, samples whose captions are all
blank, a symlink loop and a garbage image. Each bad dataset must stop the run with one `error: ` line that
names the file (and the sample where there is one) and the fix, with no traceback and no result written.

Every case builds its own small dataset; the command lines of the cases the session selected run in one module
fixture, in this process (benchmark.cli.run_app, as `clipbench` runs it).
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import tarfile
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest

from benchmark.data import shapes
from benchmark.errors import ClipbenchError
from helpers import drawn_image, read_results, write_wds

LATIN1 = "Ceci n'est pas de l'UTF-8: é à ç\n".encode("latin-1")
SAVE_AS_UTF8 = "save it as UTF-8"

class Done(NamedTuple):
    """What a command line run left: its exit code and what it printed."""

    returncode: int
    stdout: str
    stderr: str


def in_process(argv: list[str], extra_tasks: Path | None = None) -> Done:
    """The command line's own run_app, in this process (a subprocess per case would import torch each time, most
    of this file's time): stdout and stderr captured. `extra_tasks`: a folder of task files registered beside the
    bundled ones for this call only (a CAPIVARA-style webdataset and a folder task with a class-list file have no
    registered task)."""
    from benchmark import cli, tasks

    out, err = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as patch:
        if extra_tasks is not None:
            registry = tasks.task_registry()
            patched = type(registry)("task")
            for name, spec in registry.items():
                patched.register(name, spec, origin=registry.origin(name))
            for path in sorted(extra_tasks.glob("*.toml")):
                spec = tasks.load_task_file(path)
                patched.register(spec.name, spec, origin=str(path))
            patch.setattr(tasks, "task_registry", lambda root=None: patched)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = cli.run_app(argv)
    return Done(code, out.getvalue(), err.getvalue())


def run(tmp: Path, *args: str) -> tuple[Done, Path]:
    out = tmp / "out"
    return in_process(["run", "--model", "tiny-shapes", "--output", str(out), "--num-workers", "0", *args]), out


def run_with_tasks(tmp: Path, *args: str) -> tuple[Done, Path]:
    out = tmp / "out"
    return in_process(["run", "--model", "tiny-shapes", "--output", str(out), "--num-workers", "0", *args],
                      extra_tasks=tmp / "tasks"), out


# ---------------------------------------------------------------- tar surgery

def members(shard: Path) -> list[tarfile.TarInfo]:
    with tarfile.open(shard) as archive:
        return archive.getmembers()


def rewrite(shard: Path, change) -> None:
    """Rewrite a shard with `change(name, data)` applied to every member's bytes."""
    with tarfile.open(shard) as archive:
        content = [(m, archive.extractfile(m).read()) for m in archive.getmembers()]
    with tarfile.open(shard, "w") as archive:
        for member, data in content:
            data = change(member.name, data)
            member.size = len(data)
            archive.addfile(member, io.BytesIO(data))


def cut(shard: Path, at: int) -> None:
    shard.write_bytes(shard.read_bytes()[:at])


# ---------------------------------------------------------------- webdatasets (CLIP_benchmark layout)

def classification_wds(tmp: Path, n: int = 6, shard_size: int = 3) -> Path:
    samples = [{"image": image, "cls": label} for image, label in shapes.classification_samples(n, seed=5)]
    return write_wds(tmp / "wds", samples, shard_size=shard_size, classnames=shapes.class_names("en"), templates=["a {c}."])


def retrieval_wds(tmp: Path, captions: dict[int, list[str]] | None = None) -> Path:
    samples = [{"image": image, "txt": (captions or {}).get(i, caps["en"])}
               for i, (image, caps) in enumerate(shapes.caption_samples(6, seed=5))]
    return write_wds(tmp / "wds", samples, shard_size=3, dataset_type="retrieval")


def multilabel_wds(tmp: Path) -> Path:
    import webdataset

    root = tmp / "wds"
    (root / "test").mkdir(parents=True)
    with webdataset.ShardWriter(str(root / "test" / "%d.tar"), maxcount=3, verbose=0) as sink:
        for index in range(6):
            buffer = io.BytesIO()
            drawn_image(index).save(buffer, format="PNG")
            sink.write({"__key__": "s%07d" % index, "png": buffer.getvalue(), "npy": np.eye(4, dtype=np.int64)[index % 4]})
    (root / "test" / "nshards.txt").write_text("2\n")
    (root / "classnames.txt").write_text("red\ngreen\nblue\ngrey\n")
    (root / "zeroshot_classification_templates.txt").write_text("a {c} picture.\n")
    (root / "dataset_type.txt").write_text("multilabel\n")
    return root


def member_offset(shard: Path, name: str, where: str) -> int:
    member = next(m for m in members(shard) if m.name == name)
    return {"header": member.offset + 100, "data": member.offset_data + member.size // 2}[where]


def wds_cut_at_member_boundary(tmp):
    root = classification_wds(tmp)
    shard = root / "test" / "1.tar"
    cut(shard, next(m for m in members(shard) if m.name == "s0000005.cls").offset)  # s0000005 gone whole
    return run(tmp, "--task", str(root)), [str(shard), "truncated", "end-of-archive", "re-download it"]


def wds_cut_inside_a_member(where):
    def build(tmp):
        root = classification_wds(tmp)
        shard = root / "test" / "0.tar"
        cut(shard, member_offset(shard, "s0000001.png", where))
        # a cut header is no member yet: the last whole one is named
        named = {"header": "after member 's0000001.cls'", "data": "member 's0000001.png'"}[where]
        return run(tmp, "--task", str(root)), [str(shard), "truncated", named, "re-download it"]
    return build


def wds_empty_file(tmp):
    root = classification_wds(tmp)
    (root / "test" / "1.tar").write_bytes(b"")
    return run(tmp, "--task", str(root)), [str(root / "test" / "1.tar"), "empty (0 bytes)", "re-download it"]


def wds_tar_without_members(tmp):
    root = classification_wds(tmp)
    tarfile.open(root / "test" / "1.tar", "w").close()
    return run(tmp, "--task", str(root)), [str(root / "test" / "1.tar"), "holds no samples", "re-download it"]


def wds_nshards(value):
    def build(tmp):
        root = classification_wds(tmp)
        (root / "test" / "nshards.txt").write_text(f"{value}\n")
        return run(tmp, "--task", str(root)), [str(root / "test" / "nshards.txt"), f"holds '{value}'", "1 or more"]
    return build


def wds_shard_beyond_nshards(tmp):
    root = classification_wds(tmp, n=9)  # 3 shards, nshards.txt says 2
    (root / "test" / "nshards.txt").write_text("2\n")
    return run(tmp, "--task", str(root)), [str(root / "test" / "nshards.txt"), "says 2 shards", str(root / "test" / "2.tar")]


def wds_count_differs_from_sizes_json(tmp):
    root = classification_wds(tmp)
    (root / "test" / "sizes.json").write_text(json.dumps({"0.tar": 3, "1.tar": 4}))
    return run(tmp, "--task", str(root)), [str(root / "test" / "1.tar"), "holds 3 samples", "sizes.json says 4", "re-download"]


def wds_zero_byte_npy(tmp):
    root = multilabel_wds(tmp)
    shard = root / "test" / "1.tar"
    rewrite(shard, lambda name, data: b"" if name == "s0000004.npy" else data)
    return run(tmp, "--task", str(root)), [str(shard), "sample 's0000004'", "'npy' label", "re-download the shard"]


def wds_text_file_not_utf8(name):
    def build(tmp):
        root = classification_wds(tmp)
        (root / name).write_bytes(LATIN1)
        return run(tmp, "--task", str(root)), [str(root / name), "not UTF-8", SAVE_AS_UTF8]
    return build


def wds_captions_not_utf8(tmp):
    root = retrieval_wds(tmp)
    shard = root / "test" / "0.tar"
    rewrite(shard, lambda name, data: LATIN1 if name == "s0000001.txt" else data)
    return run(tmp, "--task", str(root)), [str(shard), "sample 's0000001'", "not UTF-8", SAVE_AS_UTF8]


def wds_blank_captions(tmp):
    root = retrieval_wds(tmp, captions={4: ["  ", "\t"]})
    return run(tmp, "--task", str(root)), [str(root / "test" / "1.tar"), "sample 's0000004'", "only blank captions"]


# ---------------------------------------------------------------- CAPIVARA-style webdataset (wds-json)

CAPIVARA_TASK = """name = "capivara-mini"
kind = "retrieval"
description = "a CAPIVARA-style webdataset"
languages = ["en", "pt"]
split = "test"
metrics = ["t2i_recall@1", "i2t_recall@1", "mean_recall"]
main_score = "mean_recall"
[dataset]
format = "wds-json"
path = "capivara"
shards = "*.tar"
"""


def capivara(tmp: Path, json_of) -> Path:
    """Three samples in one shard; `json_of(index)` gives each sample's json member bytes."""
    (tmp / "data" / "capivara").mkdir(parents=True)
    shard = tmp / "data" / "capivara" / "00000.tar"
    with tarfile.open(shard, "w") as archive:
        for index in range(3):
            buffer = io.BytesIO()
            drawn_image(index).save(buffer, format="JPEG")
            for ext, data in (("jpg", buffer.getvalue()), ("json", json_of(index))):
                info = tarfile.TarInfo(f"{index:05d}.{ext}")
                info.size = len(data)
                archive.addfile(info, io.BytesIO(data))
    (tmp / "tasks").mkdir()
    (tmp / "tasks" / "capivara-mini.toml").write_text(CAPIVARA_TASK)
    return shard


def capivara_json(captions_en):
    return json.dumps({"captions-en": captions_en, "captions-pt": ["um", "dois"]}).encode()


def wds_json_not_utf8(tmp):
    shard = capivara(tmp, lambda i: LATIN1 if i == 1 else capivara_json(["a red circle", "a shape"]))
    return run_with_tasks(tmp, "--task", "capivara-mini", "--data-root", str(tmp / "data")), \
        [str(shard), "sample '00001'", "not UTF-8", SAVE_AS_UTF8]


def wds_json_blank_captions(tmp):
    shard = capivara(tmp, lambda i: capivara_json([" ", ""] if i == 2 else ["a red circle", "a shape"]))
    return run_with_tasks(tmp, "--task", "capivara-mini", "--data-root", str(tmp / "data")), \
        [str(shard), "sample '00002'", "no non-blank 'captions-en' caption"]


# ---------------------------------------------------------------- Karpathy (flickr30k), #PraCegoVer, Chinese-CLIP

def karpathy(tmp: Path, sentences=lambda i: [f"caption {i} one", f"caption {i} two"]) -> Path:
    root = tmp / "data" / "flickr30k"
    (root / "flickr30k-images").mkdir(parents=True)
    entries = []
    for index in range(4):
        drawn_image(index).save(root / "flickr30k-images" / f"{index}.jpg")
        entries.append({"filename": f"{index}.jpg", "split": "test", "sentences": [{"raw": s} for s in sentences(index)]})
    (root / "dataset_flickr30k.json").write_text(json.dumps({"images": entries}))
    (root / "flickr30k_pt.jsonl").write_text("".join(json.dumps({"image": f"{i}.jpg", "captions": ["uma legenda"]}) + "\n"
                                                     for i in range(4)))
    return root


def karpathy_json_not_utf8(tmp):
    root = karpathy(tmp)
    (root / "dataset_flickr30k.json").write_bytes(LATIN1)
    # en only: without --language the run also takes zh (flickr30k-cn, absent here), and names both in one block
    return run(tmp, "--task", "flickr30k", "--language", "en", "--data-root", str(tmp / "data")), \
        [str(root / "dataset_flickr30k.json"), "not UTF-8", SAVE_AS_UTF8]


def karpathy_translations_not_utf8(tmp):
    root = karpathy(tmp)
    text = (root / "flickr30k_pt.jsonl").read_text().replace("uma legenda", "legenda em portugu\u00eas")
    (root / "flickr30k_pt.jsonl").write_bytes(text.encode("latin-1"))
    return run(tmp, "--task", "flickr30k", "--language", "pt", "--data-root", str(tmp / "data")), \
        [str(root / "flickr30k_pt.jsonl"), "not UTF-8", "line 1", SAVE_AS_UTF8]


def karpathy_blank_captions(tmp):
    root = karpathy(tmp, sentences=lambda i: ["  ", ""] if i == 2 else [f"caption {i}"])
    return run(tmp, "--task", "flickr30k", "--language", "en", "--data-root", str(tmp / "data")), \
        [str(root / "dataset_flickr30k.json"), "image 2.jpg", "no non-blank en caption"]


def pracegover(tmp: Path, captions=lambda i: f"legenda {i}") -> Path:
    root = tmp / "data" / "pracegover"
    (root / "images").mkdir(parents=True)
    for index in range(4):
        drawn_image(index).save(root / "images" / f"{index}.jpg")
    records = [{"filename": f"{i}.jpg", "caption": captions(i)} for i in range(4)]
    (root / "pracegover_400k.json").write_text(json.dumps({"test": records}))
    return root


def pracegover_not_utf8(tmp):
    root = pracegover(tmp)
    (root / "pracegover_400k.json").write_bytes(LATIN1)
    return run(tmp, "--task", "pracegover", "--language", "pt", "--data-root", str(tmp / "data")), \
        [str(root / "pracegover_400k.json"), "not UTF-8", SAVE_AS_UTF8]


def pracegover_blank_caption(tmp):
    root = pracegover(tmp, captions=lambda i: " " if i == 3 else f"legenda {i}")
    return run(tmp, "--task", "pracegover", "--language", "pt", "--data-root", str(tmp / "data")), \
        [str(root / "pracegover_400k.json"), "blank caption", "3.jpg"]


def cnclip_texts_not_utf8(tmp):
    root = tmp / "data" / "Flickr30k-CN"
    root.mkdir(parents=True)
    lines = []
    for index in range(3):
        buffer = io.BytesIO()
        drawn_image(index).save(buffer, format="JPEG")
        lines.append(f"{index}\t{base64.urlsafe_b64encode(buffer.getvalue()).decode()}\n")
    (root / "test_imgs.tsv").write_text("".join(lines))
    texts = "".join(json.dumps({"text_id": i, "text": "红色的圆", "image_ids": [i]}, ensure_ascii=False) + "\n" for i in range(3))
    (root / "test_texts.jsonl").write_bytes(texts.encode("gbk"))  # a Chinese text saved in GBK
    return run(tmp, "--task", "flickr30k-cn", "--language", "zh", "--data-root", str(tmp / "data")), \
        [str(root / "test_texts.jsonl"), "not UTF-8", SAVE_AS_UTF8]


# ---------------------------------------------------------------- folder (ELEVATER), pairs

def cifar10(tmp: Path, per_class: int = 1) -> Path:
    split = tmp / "data" / "elevater" / "cifar-10" / "test"
    for label in range(10):
        (split / str(label)).mkdir(parents=True)
        for index in range(per_class):
            drawn_image(10 * label + index).save(split / str(label) / f"{index}.png")
    return split


def folder_name_not_utf8(tmp):
    split = cifar10(tmp)
    os.rename(split / "9", os.path.join(os.fsencode(split), b"caf\xe9"))
    return run(tmp, "--task", "cifar-10", "--data-root", str(tmp / "data")), \
        [str(split), "caf\\xe9", "not UTF-8", "rename it"]


def image_name_not_utf8(tmp):
    split = cifar10(tmp)
    os.rename(split / "3" / "0.png", os.path.join(os.fsencode(split / "3"), b"\xff.png"))
    return run(tmp, "--task", "cifar-10", "--data-root", str(tmp / "data")), \
        [str(split / "3"), "\\xff.png", "not UTF-8", "rename it"]


def folder_garbage_image(tmp):
    split = cifar10(tmp)
    (split / "4" / "0.png").unlink()
    (split / "4" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not a JPEG at all")
    # the image is decoded in a DataLoader worker process; the message comes back from there
    return run(tmp, "--task", "cifar-10", "--data-root", str(tmp / "data"), "--num-workers", "2"), [str(split / "4" / "broken.jpg"), "could not be read", "re-download or remove"]


def class_list_not_utf8(tmp):
    split = cifar10(tmp)
    root = split.parent
    (root / "classes.txt").write_bytes("\n".join(map(str, range(10))).encode() + b"\n\xe9t\xe9\n")
    (tmp / "tasks").mkdir()
    (tmp / "tasks" / "listed.toml").write_text(
        'name = "listed"\nkind = "classification"\ndescription = "x"\nlanguages = ["en"]\nsplit = "test"\n'
        'metrics = ["acc1"]\nmain_score = "acc1"\nprompts = "cifar-10"\n'
        f'[dataset]\nformat = "folder"\npath = "{root}"\nclasses = "classes.txt"\n')
    return run_with_tasks(tmp, "--task", "listed"), [str(root / "classes.txt"), "line 11", SAVE_AS_UTF8]


def multilabel_index_not_utf8(tmp):
    root = tmp / "data" / "elevater" / "voc-2007-classification"
    root.mkdir(parents=True)
    (root / "test_ic.txt").write_bytes(b"test.zip@JPEGImages/0.jpg 1,2\ntest.zip@JPEGImages/caf\xe9.jpg 3\n")
    return run(tmp, "--task", "voc-2007-classification", "--data-root", str(tmp / "data")), \
        [str(root / "test_ic.txt"), "line 2", SAVE_AS_UTF8]


def pairs_csv_not_utf8(tmp):
    root = tmp / "data" / "newstt"
    (root / "images").mkdir(parents=True)
    rows = ["image,title,summary,label,split"]
    for index in range(4):
        drawn_image(index).save(root / "images" / f"{index}.jpg")
        rows.append(f"{index}.jpg,Caf\u00e9 news {index},summary,{index % 2},{'validation' if index < 2 else 'test'}")
    (root / "newstt.csv").write_bytes("\n".join(rows).encode("cp1252"))  # as a spreadsheet on Windows saves it
    return run(tmp, "--task", "news-thumbnails", "--data-root", str(tmp / "data")), \
        [str(root / "newstt.csv"), "not UTF-8", "line 2", SAVE_AS_UTF8]


CASES = {
    "wds-cut-at-member-boundary": wds_cut_at_member_boundary,
    "wds-cut-inside-member-header": wds_cut_inside_a_member("header"),
    "wds-cut-inside-member-data": wds_cut_inside_a_member("data"),
    "wds-empty-file": wds_empty_file,
    "wds-tar-without-members": wds_tar_without_members,
    "wds-nshards-0": wds_nshards(0),
    "wds-nshards-minus-1": wds_nshards(-1),
    "wds-shard-beyond-nshards": wds_shard_beyond_nshards,
    "wds-count-differs-from-sizes-json": wds_count_differs_from_sizes_json,
    "wds-zero-byte-npy": wds_zero_byte_npy,
    "wds-classnames-not-utf8": wds_text_file_not_utf8("classnames.txt"),
    "wds-templates-not-utf8": wds_text_file_not_utf8("zeroshot_classification_templates.txt"),
    "wds-language-not-utf8": wds_text_file_not_utf8("language.txt"),
    "wds-captions-not-utf8": wds_captions_not_utf8,
    "wds-blank-captions": wds_blank_captions,
    "wds-json-not-utf8": wds_json_not_utf8,
    "wds-json-blank-captions": wds_json_blank_captions,
    "karpathy-json-not-utf8": karpathy_json_not_utf8,
    "karpathy-translations-not-utf8": karpathy_translations_not_utf8,
    "karpathy-blank-captions": karpathy_blank_captions,
    "pracegover-not-utf8": pracegover_not_utf8,
    "pracegover-blank-caption": pracegover_blank_caption,
    "cnclip-texts-not-utf8": cnclip_texts_not_utf8,
    "folder-name-not-utf8": folder_name_not_utf8,
    "folder-image-name-not-utf8": image_name_not_utf8,
    "folder-class-list-not-utf8": class_list_not_utf8,
    "folder-multilabel-index-not-utf8": multilabel_index_not_utf8,
    "folder-garbage-image": folder_garbage_image,
    "pairs-csv-not-utf8": pairs_csv_not_utf8,
}


@pytest.fixture(scope="module")
def outcomes(request, tmp_path_factory):
    """{case: (completed command, output folder, needles)} for the cases this session selected, run concurrently."""
    wanted = [item.callspec.params["case"] for item in request.session.items
              if item.module is request.module and hasattr(item, "callspec") and "case" in item.callspec.params]

    folders = {case: tmp_path_factory.mktemp(case) for case in wanted}

    def one(case):
        (done, out), needles = CASES[case](folders[case])
        return case, (done, out, needles)

    return dict(one(case) for case in wanted)  # one after another: the command line is not thread-safe


@pytest.mark.parametrize("case", list(CASES))
def test_bad_dataset_is_refused_with_one_clear_line(outcomes, case):
    done, out, needles = outcomes[case]
    assert done.returncode == 1, (done.returncode, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    for word in ("Traceback", "unexpected", "internal error", "Aborted"):
        assert word not in done.stderr, done.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    assert not out.exists() or not list(out.rglob("*.json"))


# ---------------------------------------------------------------- what must still run, and count right

def test_symlink_loop_in_a_class_folder_counts_each_image_once(tmp_path):
    split = cifar10(tmp_path, per_class=1)
    (split / "0" / "more").mkdir()
    drawn_image(99).save(split / "0" / "more" / "extra.png")
    os.symlink("..", split / "0" / "more" / "loop")  # 0/more/loop/more/loop/... without end
    os.symlink(split / "0" / "more", split / "0" / "again")  # a second way into the same folder
    done, out = run(tmp_path, "--task", "cifar-10", "--language", "en", "--data-root", str(tmp_path / "data"))
    assert done.returncode == 0, done.stderr
    [result] = read_results(out)
    assert result["dataset"]["n_images"] == 11


def test_end_of_archive_padding_cut_short_loses_nothing(tmp_path):
    """A shard that keeps its two zero blocks but lost part of the padding to 10240 bytes holds every sample."""
    root = classification_wds(tmp_path)
    shard = root / "test" / "1.tar"
    last = members(shard)[-1]
    cut(shard, last.offset_data + -(-last.size // 512) * 512 + 1024)
    done, out = run(tmp_path, "--task", str(root))
    assert done.returncode == 0, done.stderr
    assert read_results(out)[0]["dataset"]["n_images"] == 6


def test_prompt_file_not_utf8(tmp_path):
    from benchmark import prompts

    (tmp_path / "en").mkdir()
    (tmp_path / "en" / "mine.json").write_bytes(b'{"task": "mine", "classnames": ["caf\xe9"]}')
    with pytest.raises(ClipbenchError) as error:
        prompts.load("mine", "en", root=tmp_path)
    assert str(tmp_path / "en" / "mine.json") in str(error.value) and SAVE_AS_UTF8 in str(error.value)


def test_byte_order_mark_is_not_part_of_the_first_class_name(tmp_path):
    from benchmark import data as datasets
    from benchmark.tasks import task_from_directory

    root = classification_wds(tmp_path)
    names = shapes.class_names("en")
    (root / "classnames.txt").write_bytes(b"\xef\xbb\xbf" + "\n".join(names).encode())
    loaded = datasets.load(task_from_directory(root), "en", tmp_path)  # an absolute path: the root is not read
    assert loaded.prompts.classnames == names
