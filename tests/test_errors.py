"""Bad input: one clear line naming the problem and the fix, a non-zero exit, no traceback, no result file."""

import io
import tarfile

import pytest

from benchmark.data import shapes
from benchmark.errors import ClipbenchError
from benchmark.tasks import load_task_file
from helpers import clipbench, write_wds


def assert_clean_failure(done, code, *needles, out=None):
    assert done.returncode == code, (done.returncode, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    assert "Traceback" not in done.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    if out is not None:
        assert not list(out.rglob("*.json"))


def test_unknown_model_suggests_a_name(tmp_path):
    done = clipbench("run", "--model", "tiny-shape", "--task", "shapes", "--output", str(tmp_path))
    assert_clean_failure(done, 2, "Unknown model 'tiny-shape'", "Did you mean: tiny-shapes", out=tmp_path)


def test_unknown_task_suggests_a_name(tmp_path):
    done = clipbench("run", "--model", "tiny-shapes", "--task", "shape-captions", "--output", str(tmp_path))
    assert_clean_failure(done, 2, "Unknown task 'shape-captions'", "shapes-captions", out=tmp_path)


def test_missing_dataset_directory(tmp_path):
    missing = tmp_path / "nowhere"
    done = clipbench("run", "--model", "tiny-shapes", "--task", str(missing), "--output", str(tmp_path))
    assert_clean_failure(done, 1, str(missing), "does not exist", out=tmp_path)


def test_directory_in_the_wrong_layout(tmp_path):
    (tmp_path / "data" / "val").mkdir(parents=True)
    done = clipbench("run", "--model", "tiny-shapes", "--task", str(tmp_path / "data"), "--output", str(tmp_path / "out"))
    assert_clean_failure(done, 1, "nshards.txt is missing", "['val']")


def test_language_the_task_lacks(tmp_path):
    done = clipbench("run", "--model", "tiny-shapes", "--task", "shapes", "--language", "de", "--output", str(tmp_path))
    assert_clean_failure(done, 2, "task 'shapes' has no de version", out=tmp_path)


def _dataset(tmp_path, n=6, classnames=None):
    samples = [{"image": img, "cls": label} for img, label in shapes.classification_samples(n, seed=3)]
    return write_wds(tmp_path / "wds", samples, classnames=classnames or shapes.class_names("en"), templates=["a {c}."])


def test_class_count_that_does_not_match_the_prompts(tmp_path):
    root = _dataset(tmp_path, classnames=shapes.class_names("en")[:3])
    out = tmp_path / "out"
    done = clipbench("run", "--model", "tiny-shapes", "--task", str(root), "--output", str(out))
    assert_clean_failure(done, 1, "classnames has 3 names", out=out)


def _replace_member(shard, name, payload):
    with tarfile.open(shard) as archive:
        members = [(m, archive.extractfile(m).read()) for m in archive.getmembers()]
    with tarfile.open(shard, "w") as archive:
        for member, data in members:
            if member.name == name:
                data = payload(data)
                member.size = len(data)
            archive.addfile(member, io.BytesIO(data))


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_corrupt_or_truncated_image(tmp_path, damage):
    root = _dataset(tmp_path)
    cut = {"truncated": lambda data: data[: len(data) // 2], "garbage": lambda data: b"not an image at all"}[damage]
    _replace_member(root / "test" / "0.tar", "s0000003.png", cut)
    out = tmp_path / "out"
    done = clipbench("run", "--model", "tiny-shapes", "--task", str(root), "--output", str(out), "--num-workers", "2")
    assert_clean_failure(done, 1, "sample 's0000003'", "could not be read", out=out)


def test_debug_shows_the_traceback(tmp_path):
    done = clipbench("run", "--model", "tiny-shape", "--task", "shapes", "--output", str(tmp_path), "--debug")
    assert done.returncode != 0 and "Traceback" in done.stderr


def test_precision_fp16_needs_cuda(tmp_path):
    done = clipbench("run", "--model", "tiny-shapes", "--task", "shapes", "--device", "cpu", "--precision", "fp16", "--output", str(tmp_path))
    assert_clean_failure(done, 2, "fp16 needs a CUDA device", out=tmp_path)


@pytest.mark.parametrize(
    "body, field",
    [
        ("extra_key = 1\n", "field 'extra_key': unknown key"),
        ("", None),
    ],
)
def test_malformed_task_file_names_the_file_and_field(tmp_path, body, field):
    good = (
        'name = "bad"\nkind = "classification"\ndescription = "x"\nlanguages = ["en"]\nsplit = "test"\n'
        'metrics = ["acc1"]\nmain_score = "acc1"\nprompts = "shapes"\n[dataset]\nformat = "shapes"\nsize = 4\nseed = 1\n'
    )
    path = tmp_path / "bad.toml"
    path.write_text(body + good)
    if field is None:
        assert load_task_file(path).name == "bad"
        return
    with pytest.raises(ClipbenchError) as info:
        load_task_file(path)
    assert str(path) in str(info.value) and field in str(info.value)


@pytest.mark.parametrize(
    "change, needle",
    [
        (("split = \"test\"\n", ""), "field 'split': required field is missing"),
        (("main_score = \"acc1\"", "main_score = \"mean_recall\""), "main_score 'mean_recall' must be one of"),
        (("size = 4", "size = 4\ncolour = 1"), "field 'dataset.colour': unknown key"),
        (("format = \"shapes\"", "format = \"nope\""), "unknown format 'nope'"),
        (("languages = [\"en\"]", "languages = [\"english\"]"), "'english' is not a language code"),
    ],
)
def test_task_file_errors(tmp_path, change, needle):
    text = (
        'name = "bad"\nkind = "classification"\ndescription = "x"\nlanguages = ["en"]\nsplit = "test"\n'
        'metrics = ["acc1"]\nmain_score = "acc1"\nprompts = "shapes"\n[dataset]\nformat = "shapes"\nsize = 4\nseed = 1\n'
    )
    path = tmp_path / "bad.toml"
    path.write_text(text.replace(*change))
    with pytest.raises(ClipbenchError) as info:
        load_task_file(path)
    assert str(path) in str(info.value) and needle in str(info.value)
