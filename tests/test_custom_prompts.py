"""`run --templates FILE` / `--classnames FILE`: a run's own prompts (txt or JSON, CLIP_benchmark's task-keyed files,
CuPL's per-class prompts), recorded with the files' sha256 and kept apart from runs with the task's own prompts."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch

from benchmark import custom_prompts, prompts as prompt_files
from benchmark.data import shapes
from benchmark.errors import ClipbenchError
from benchmark.prompts import Prompts
from benchmark.results import Result
from benchmark.run import result_path
from helpers import clipbench_here as clipbench, read_results

NAMES = shapes.class_names("en")


def write(path: Path, content) -> Path:
    path.write_text(content if isinstance(content, str) else json.dumps(content, ensure_ascii=False), encoding="utf-8")
    return path


def shapes_prompts() -> Prompts:
    return prompt_files.load("shapes", "en", 16)


def apply(tmp_path, templates=None, classnames=None, task="shapes", num_classes=16, declared=shapes_prompts) -> Prompts:
    """The prompts a run with these --templates / --classnames contents would use for `task`."""
    paths = {}
    for option, content in (("templates", templates), ("classnames", classnames)):
        if content is not None:
            suffix = ".txt" if isinstance(content, str) else ".json"
            paths[option] = write(tmp_path / f"{option}{suffix}", content)
    custom = custom_prompts.read(paths.get("templates"), paths.get("classnames"))
    return custom.apply(declared, task, num_classes)


# ------------------------------------------------------------------------------------------ reading the files

def test_text_and_json_lists(tmp_path):
    found = apply(tmp_path, templates="a photo of a {c}.\n\n  a sketch of a {c}.  \n")
    assert found.templates == ["a photo of a {c}.", "a sketch of a {c}."] and found.classnames == NAMES
    assert found.texts()[:2] == ["a photo of a red circle.", "a sketch of a red circle."]
    renamed = [f"shape {i}" for i in range(16)]
    both = apply(tmp_path, templates=["{c}!"], classnames=renamed)
    assert both.texts() == [f"shape {i}!" for i in range(16)]
    assert str(tmp_path / "templates.json") in both.origin and "the rest from" not in both.origin  # nothing of the task's
    only_names = apply(tmp_path, classnames="\n".join(renamed) + "\n")
    assert only_names.templates == shapes_prompts().templates and "the rest from" in only_names.origin


def test_clip_benchmark_task_keyed_files(tmp_path):
    """CLIP_benchmark's --custom_template_file / --custom_classname_file: objects keyed by dataset; a wds/ task is also
    found under its name without wds/ (builder.py keys_to_lookup)."""
    keyed = apply(tmp_path, templates={"cifar10": ["no {c}"], "shapes": ["a {c} shape."]},
                  classnames={"shapes": [n.upper() for n in NAMES]})
    assert keyed.texts()[0] == "a RED CIRCLE shape."
    wds = apply(tmp_path, templates={"vtab/cifar10": ["a blurry photo of a {c}."]}, task="wds/vtab/cifar10")
    assert wds.templates == ["a blurry photo of a {c}."]
    with pytest.raises(ClipbenchError, match=r"templates.json: no entry for task 'shapes' \(keys: cifar10\)"):
        apply(tmp_path, templates={"cifar10": ["a {c}."]})


def test_cupl_per_class_prompts(tmp_path):
    per_class = {name: [f"a {name} drawn on paper.", f"the {name}."][: 1 + i % 2] for i, name in enumerate(NAMES)}
    per_class["not a class"] = ["ignored"]
    found = apply(tmp_path, templates=per_class)
    assert found.templates == [] and found.per_class == [per_class[n] for n in NAMES]
    assert found.n_texts == 24 and found.texts()[:3] == ["a red circle drawn on paper.", "a green circle drawn on paper.", "the green circle."]
    assert found.info()["per_class"] is True and found.info()["n_templates"] is None and found.info()["n_texts"] == 24
    under_task = apply(tmp_path, templates={"shapes": per_class})  # as CLIP_benchmark's cupl_prompts.json: {"imagenet1k": {...}}
    assert under_task.per_class == found.per_class
    del per_class["blue star"]
    with pytest.raises(ClipbenchError, match=r"no prompts for class 'blue star' \(class 14 of task 'shapes'\)"):
        apply(tmp_path, templates=per_class)


def test_clip_benchmarks_own_cupl_file_fits_imagenet(tmp_path):
    """CLIP_benchmark 1.6.2's cupl_prompts.json (its own example of --custom_template_file) gives each of
    open_clip's 1,000 ImageNet class names its prompts (998 distinct names: duplicates share theirs)."""
    import clip_benchmark

    cupl = Path(clip_benchmark.__file__).parent / "datasets" / "cupl_prompts.json"
    custom = custom_prompts.read(cupl, None)
    found = custom.apply(lambda: prompt_files.load("open_clip:imagenet", "en", 1000), "imagenet1k", 1000)
    table = json.loads(cupl.read_text(encoding="utf-8"))["imagenet1k"]
    assert len(found.per_class) == 1000 and found.per_class[0] == table["tench"]
    assert found.overrides == {"--templates": {"file": str(cupl.resolve()), "sha256": hashlib.sha256(cupl.read_bytes()).hexdigest()}}


@pytest.mark.parametrize("content, message", [
    ("a photo of a {c}.\n\na photo of nothing.\n", r"templates.txt line 3: template 'a photo of nothing.' has no \{c\}"),
    (["a {c}.", "no class"], r"templates.json item 2: template 'no class' has no \{c\}"),
    ({"shapes": ["a {c}.", "no class"]}, r"templates.json item 2: template 'no class' has no \{c\}"),
    ({"shapes": []}, r"templates.json: entry 'shapes' is empty"),
    ("\n \n", r"templates.txt is empty; --templates needs at least one template"),
])
def test_bad_templates(tmp_path, content, message):
    with pytest.raises(ClipbenchError, match=message) as caught:
        apply(tmp_path, templates=content)
    assert caught.value.exit_code == 2


def test_bad_json_and_counts(tmp_path):
    for text, message in (('["a {c}",', r"bad.json line 1: not valid JSON"), ("[1, 2]", r"bad.json item 1 is 1, not a string"),
                          ('"a {c}"', r"bad.json: a str is not a list or an object")):
        with pytest.raises(ClipbenchError, match=message):
            custom_prompts.read(write(tmp_path / "bad.json", text), None)
    with pytest.raises(ClipbenchError, match="no such file"):
        custom_prompts.read(None, tmp_path / "absent.txt")
    (tmp_path / "latin1.txt").write_bytes("caf\xe9\n".encode("latin-1"))
    with pytest.raises(ClipbenchError, match=r"latin1.txt is not UTF-8 text .* on line 1\); save it as UTF-8") as caught:
        custom_prompts.read(None, tmp_path / "latin1.txt")
    assert caught.value.exit_code == 2
    with pytest.raises(ClipbenchError, match=r"classnames.txt: 9 class names \(the last on line 10\) but task 'shapes' has 16 "
                                             r"classes; give one name per class, 16 in class-index order") as caught:
        apply(tmp_path, classnames="\n".join(NAMES[:4]) + "\n\n" + "\n".join(NAMES[4:9]))
    assert caught.value.exit_code == 2
    with pytest.raises(ClipbenchError, match=r"classnames.json: 17 class names \(the last on item 17\)"):
        apply(tmp_path, classnames=NAMES + ["extra"])


# ------------------------------------------------------------------------------------------ what is recorded

def test_sha_covers_the_prompts_used(tmp_path):
    own = shapes_prompts()
    same = apply(tmp_path, templates="\n".join(own.templates))
    other = apply(tmp_path, templates=own.templates[:3])
    assert same.sha256 == own.sha256  # the same prompts: the same measurement
    assert other.sha256 != own.sha256
    cupl = apply(tmp_path, templates={n: [t.replace("{c}", n) for t in own.templates] for n in NAMES})
    assert cupl.texts() == own.texts() and cupl.sha256 not in (own.sha256, same.sha256)
    assert own.info() == {"origin": own.origin, "sha256": own.sha256, "n_templates": 4}  # as results always recorded it


def test_per_class_classifier_equals_clip_benchmarks():
    """The ragged average equals CLIP_benchmark's zero_shot_classifier with a dict of per-class prompts (its CuPL
    path), and the rectangular path is untouched: per-class prompts that are the templates filled in give the
    same classifier as the templates."""
    from clip_benchmark.metrics.zeroshot_classification import zero_shot_classifier

    from benchmark import models
    from benchmark.embed import build_classifier

    encoder = models.load(models.resolve("tiny-shapes"), torch.device("cpu"), "fp32")
    own = shapes_prompts()
    per_class = {n: [f"a {n}.", f"a photo of a {n}.", f"a drawing of a {n}"][: 1 + i % 3] for i, n in enumerate(NAMES)}
    cupl = Prompts(NAMES, [], "test", per_class=[per_class[n] for n in NAMES])
    ours = build_classifier(encoder, cupl, batch_size=5)
    with torch.no_grad():
        theirs = zero_shot_classifier(encoder.model, encoder.tokenizer, NAMES, per_class, "cpu", amp=False).T
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-6)
    filled = Prompts(NAMES, [], "test", per_class=[[t.replace("{c}", n) for t in own.templates] for n in NAMES])
    torch.testing.assert_close(build_classifier(encoder, filled, 7), build_classifier(encoder, own, 7), rtol=0, atol=1e-6)
    raw = build_classifier(encoder, cupl, averaging="mean-then-normalise")
    assert not torch.allclose(raw, ours)  # the protocol's averaging rule applies to per-class prompts too


def test_run_records_the_files_and_keeps_runs_apart(tmp_path):
    """One output folder: the task's own prompts, CuPL prompts, and a templates + class-names pair. Three result
    files, each recording its files' sha256; `table` refuses to average them as one cell."""
    out = tmp_path / "out"
    cupl = write(tmp_path / "cupl.json", {n: [f"a picture of a {n}.", f"look, a {n}!"] for n in NAMES})
    templates = write(tmp_path / "t.txt", "a photo of a {c}.\n")
    names = write(tmp_path / "n.txt", "\n".join(NAMES) + "\n")
    common = ("--model", "tiny-shapes", "--task", "shapes", "--language", "en", "--num-workers", "0", "--limit", "120",
              "--output", str(out))
    for extra in ((), ("--templates", str(cupl)), ("--templates", str(templates), "--classnames", str(names))):
        done = clipbench("run", *common, *extra)
        assert done.returncode == 0, done.stderr
    files = sorted(p.name for p in (out / "tiny-shapes").iterdir())
    assert len(files) == 3 and "shapes.en.limit120.seed0.json" in files, files
    for path in (out / "tiny-shapes").iterdir():  # where each was written is known from the record alone
        assert result_path(out, Result.from_disk(path)) == path
    by_files = {tuple(sorted(r["prompts"].get("overrides", {}))): r for r in read_results(out)}
    plain, per_class, pair = by_files[()], by_files[("--templates",)], by_files[("--classnames", "--templates")]
    assert plain["prompts"] == {"origin": plain["prompts"]["origin"], "sha256": shapes_prompts().sha256, "n_templates": 4}
    assert per_class["prompts"]["overrides"]["--templates"]["sha256"] == hashlib.sha256(cupl.read_bytes()).hexdigest()
    assert per_class["prompts"]["n_texts"] == 32 and per_class["dataset"]["n_texts"] == 32
    assert pair["prompts"]["overrides"]["--classnames"] == {"file": str(names.resolve()),
                                                            "sha256": hashlib.sha256(names.read_bytes()).hexdigest()}
    assert len({r["prompts"]["sha256"] for r in (plain, per_class, pair)}) == 3
    assert plain["dataset"]["fingerprint"] == per_class["dataset"]["fingerprint"]  # same images, other prompts
    assert all(r["metrics"]["acc1"] >= 0.8 for r in (plain, per_class, pair)), [r["metrics"] for r in (plain, per_class, pair)]
    table = clipbench("table", str(out))
    assert table.returncode == 1 and "their prompts.sha256 differ" in table.stderr, table.stderr


def test_run_refuses_bad_files_before_the_model(tmp_path):
    bad = write(tmp_path / "t.txt", "a photo of a {c}.\na photo\n")
    done = clipbench("run", "--model", "tiny-shapes", "--task", "shapes", "--templates", str(bad), "--output", str(tmp_path / "out"))
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith(f"error: {bad} line 2: template 'a photo' has no {{c}}")
    short = write(tmp_path / "n.txt", "\n".join(NAMES[:9]))
    done = clipbench("run", "--model", "tiny-shapes", "--task", "shapes", "--classnames", str(short), "--output", str(tmp_path / "out"))
    assert done.returncode == 2 and done.stderr.strip() == (
        f"error: {short}: 9 class names (the last on line 9) but task 'shapes' has 16 classes; "
        "give one name per class, 16 in class-index order (--classnames)"), done.stderr
    done = clipbench("run", "--model", "tiny-shapes", "--task", "shapes-captions", "--classnames", str(short), "--output", str(tmp_path / "out"))
    assert done.returncode == 2 and "--classnames applies to classification tasks and none of shapes-captions is one" in done.stderr
    assert not (tmp_path / "out").exists()
