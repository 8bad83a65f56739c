"""The classification catalogue: every task file and its prompts, the ELEVATER suite, the converted upstream
prompt lists, and the `folder` format, run through the real command line on small fixtures laid out as the
registered tasks expect them and checked against an independent computation."""

import io
import json
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw

from benchmark import data as datasets, prompts
from benchmark.errors import ClipbenchError
from benchmark.paths import data_dir
from benchmark.tasks import load_task_file, suite_registry, task_registry
from helpers import clipbench_here as clipbench, read_results

TASKS = task_registry()
PROMPTS = data_dir("prompts")
UPSTREAM = Path("/work/shared/data/prompts")
ELEVATER_20 = [
    "caltech-101", "cifar-10", "cifar-100", "country211", "dtd", "eurosat-clip", "fer-2013",
    "fgvc-aircraft-2013b-variants102", "food-101", "gtsrb", "hateful-memes", "kitti-distance", "mnist",
    "oxford-flower-102", "oxford-iiit-pets", "patch-camelyon", "rendered-sst2", "resisc45-clip", "stanford-cars",
    "voc-2007-classification",
]


# ---------------------------------------------------------------------------------------------- catalogue

@pytest.mark.parametrize("name", TASKS.names())
def test_task_file_and_its_prompts(name):
    spec = TASKS.get(name)
    assert load_task_file(Path(spec.source_file)) == spec
    if spec.kind != "classification" or not spec.prompts:
        return
    for language in spec.languages:
        found = prompts.load(spec.prompts, language, spec.num_classes)
        assert len(found.classnames) == spec.num_classes, (name, language)
        assert all("{c}" in t for t in found.templates), (name, language)


def test_prompt_files_name_their_task_and_language():
    from benchmark.protocols import protocol_registry

    protocol_prompts: dict[str, set] = {}
    for _, protocol in protocol_registry().items():
        for task, own in protocol.tasks.items():
            assert all(name.startswith(f"{task}-") for name in own.prompts.values()), protocol.source_file
            protocol_prompts.setdefault(task, set()).update(own.prompts.values())
    for path in sorted(PROMPTS.glob("*/*.json")):
        raw = json.loads(path.read_text(encoding="utf-8"))
        # <task>.json, or <task>-<protocol>.json: a paper's own list, which a protocol names (protocols/*.toml)
        assert raw["language"] == path.parent.name and path.stem in (raw["task"], *protocol_prompts.get(raw["task"], ())), path
        assert raw["licence"] and raw["source"], path
    assert not (PROMPTS / "en" / "imagenet1k.json").exists(), "English ImageNet prompts come from open_clip"


def test_elevater_suite():
    suite = suite_registry().get("elevater")
    assert sorted(suite.tasks) == sorted(ELEVATER_20) and suite.aggregate == "mean"
    for name in ELEVATER_20:
        spec = TASKS.get(name)
        assert spec.source_file.endswith(f"elevater/{name}.toml") and spec.languages == ["en", "pt"]
        assert spec.dataset.format == "folder" and spec.dataset.options["path"] == f"elevater/{name}"
    assert TASKS.get("kitti-distance").dataset.options["center_crop"] is False
    assert TASKS.get("voc-2007-classification").metrics == ["map_11point"]


def test_food101_portuguese_has_tacos_back():
    pt = json.loads((PROMPTS / "pt" / "food-101.json").read_text(encoding="utf-8"))
    en = json.loads((PROMPTS / "en" / "food-101.json").read_text(encoding="utf-8"))
    assert len(pt["classnames"]) == len(en["classnames"]) == 101
    assert en["classnames"][96] == "tacos" and pt["classnames"][96] == "tacos"
    assert pt["classnames"][95:98] == ["sushi", "tacos", "takoyaki"] and pt["classnames"][-1] == "waffles"
    assert "tacos" in pt["notes"]


def test_open_clip_imagenet_is_built_in():
    import open_clip

    from benchmark.prompts import builtin_prompts

    found = builtin_prompts("open_clip:imagenet", "en")
    assert found.classnames == list(open_clip.IMAGENET_CLASSNAMES)
    assert [t.replace("{c}", "a dog") for t in found.templates] == [t("a dog") for t in open_clip.OPENAI_IMAGENET_TEMPLATES]
    assert builtin_prompts("imagenet1k", "en") == found and builtin_prompts("imagenet1k", "pt") is None
    with pytest.raises(ClipbenchError):
        builtin_prompts("open_clip:imagenet", "pt")


def test_babel_imagenet_subset():
    spec = TASKS.get("babel-imagenet")
    subset = spec.dataset.options["class_subset"]
    names = json.loads((PROMPTS / "pt" / "babel-imagenet.json").read_text(encoding="utf-8"))["classnames"]
    assert len(subset) == len(names) == spec.num_classes == 667
    assert subset == sorted(set(subset)) and 0 <= subset[0] and subset[-1] < 1000
    assert spec.dataset.options["path"] == TASKS.get("imagenet1k").dataset.options["path"]


@pytest.mark.skipif(not UPSTREAM.is_dir(), reason="upstream JSON copies not available")
def test_converter_reproduces_the_committed_files():
    from benchmark.dev.prompts_convert import generate

    root = PROMPTS.parent
    for rel, text in generate(UPSTREAM).items():
        assert (root / rel).read_text(encoding="utf-8") == text, f"{rel} differs: run python -m benchmark.dev.prompts_convert"


# ---------------------------------------------------------------------------------------------- fixtures

def drawn(seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    colour = lambda: tuple(int(v) for v in rng.integers(0, 256, 3))  # noqa: E731
    image = Image.new("RGB", (48, 40), colour())
    draw = ImageDraw.Draw(image)
    for _ in range(3):
        x, y = (int(v) for v in rng.integers(0, 36, 2))
        box = [x, y, x + int(rng.integers(6, 30)), y + int(rng.integers(6, 30))]
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(box, fill=colour())
    return image


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A small randomly initialised open_clip model with CLIP's BPE tokenizer, as a local-dir model."""
    import open_clip
    from safetensors.torch import save_file

    folder = tmp_path_factory.mktemp("model")
    config = {
        "model_cfg": {
            "embed_dim": 32,
            "vision_cfg": {"image_size": 32, "patch_size": 8, "width": 64, "layers": 2, "head_width": 32, "mlp_ratio": 2.0},
            "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2, "mlp_ratio": 2.0},
        },
        "preprocess_cfg": {"size": 32},
    }
    (folder / "open_clip_config.json").write_text(json.dumps(config))
    torch.manual_seed(0)
    model = open_clip.create_model(f"local-dir:{folder}")
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(folder / "open_clip_model.safetensors"))
    return folder


class Reference:
    """open_clip used directly: image embeddings and zero-shot classifiers built from the prompt JSON files."""

    def __init__(self, folder: Path):
        import open_clip

        self.model, _, self.preprocess = open_clip.create_model_and_transforms(f"local-dir:{folder}")
        self.model.eval()
        self.tokenizer = open_clip.get_tokenizer(f"local-dir:{folder}")

    @torch.no_grad()
    def images(self, images: list[Image.Image]) -> torch.Tensor:
        return F.normalize(self.model.encode_image(torch.stack([self.preprocess(i) for i in images])), dim=-1)

    @torch.no_grad()
    def classifier(self, task: str, language: str) -> torch.Tensor:
        raw = json.loads((PROMPTS / language / f"{task}.json").read_text(encoding="utf-8"))
        rows = []
        for name in raw["classnames"]:
            texts = [t.replace("{c}", name.strip()) for t in raw["templates"]]
            rows.append(F.normalize(F.normalize(self.model.encode_text(self.tokenizer(texts)), dim=-1).mean(0), dim=0))
        return torch.stack(rows)


@pytest.fixture(scope="module")
def reference(model_dir):
    return Reference(model_dir)


def topk(logits: torch.Tensor, labels: torch.Tensor, k: int) -> float:
    return (logits.topk(k, dim=1).indices == labels[:, None]).any(1).sum().item() / len(labels)


# ---------------------------------------------------------------------------------------------- folder format, CLI

def gtsrb_fixture(root: Path, reference: Reference) -> tuple[list[Image.Image], list[int]]:
    """GTSRB (43 classes) laid out as Chinese-CLIP's ELEVATER folders but numbered without zero padding, so
    sorted folder names ('0', '1', '10', ...) differ from the label order. Each image goes to the folder of the
    class the model predicts for it (English prompts), so top-1 is high only when the labels follow the task's
    class order."""
    pool = [drawn(seed) for seed in range(40)]
    predicted = (100 * reference.images(pool) @ reference.classifier("gtsrb", "en").T).argmax(1).tolist()
    images, labels = list(pool), list(predicted)
    for label in range(43):  # every class needs images: fill the ones nobody predicted with other images
        if label not in labels:
            images.append(drawn(1000 + label))
            labels.append(label)
    for index, (image, label) in enumerate(zip(images, labels)):
        folder = root / "elevater" / "gtsrb" / "test" / str(label)
        folder.mkdir(parents=True, exist_ok=True)
        image.save(folder / f"img{index:03d}.png")
    return images, labels


def voc_fixture(root: Path) -> tuple[list[Image.Image], np.ndarray]:
    """VOC 2007 in ELEVATER's vision-datasets layout: test_ic.txt lines '<zip>@<member> <i>,<j>' and an
    uncompressed test.zip."""
    rng = np.random.default_rng(5)
    images = [drawn(500 + i) for i in range(26)]
    targets = (rng.random((26, 20)) < 0.12).astype(np.int64)
    targets[np.arange(20), np.arange(20)] = 1  # every class has a positive
    folder = root / "elevater" / "voc-2007-classification"
    folder.mkdir(parents=True)
    lines = []
    with zipfile.ZipFile(folder / "test.zip", "w", compression=zipfile.ZIP_STORED) as archive:
        for index, image in enumerate(images):
            member = f"JPEGImages/{index:06d}.png"
            buffer = io.BytesIO()
            image.save(buffer, format="PNG")
            archive.writestr(member, buffer.getvalue())
            lines.append(f"test.zip@{member} " + ",".join(str(c) for c in np.flatnonzero(targets[index])))
    (folder / "test_ic.txt").write_text("\n".join(lines) + "\n")
    return images, targets


@pytest.fixture(scope="module")
def cli_run(model_dir, reference, tmp_path_factory):
    """One run of the real command line over both registered-task fixtures, in English and Portuguese."""
    root = tmp_path_factory.mktemp("data")
    fixtures = {"gtsrb": gtsrb_fixture(root, reference), "voc-2007-classification": voc_fixture(root)}
    out = tmp_path_factory.mktemp("out")
    done = clipbench("run", "--model", f"local-dir:{model_dir}", "--task", "gtsrb", "--task", "voc-2007-classification",
                     "--language", "en", "--language", "pt", "--data-root", str(root), "--output", str(out),
                     "--num-workers", "0", "--batch-size", "32")
    assert done.returncode == 0, done.stderr
    return fixtures, {(r["task"], r["language"]): r for r in read_results(out)}


def test_folder_task_through_the_cli(reference, cli_run):
    fixtures, results = cli_run
    images, labels = fixtures["gtsrb"]
    embeddings, truth = reference.images(images), torch.tensor(labels)
    for language in ("en", "pt"):
        result = results[("gtsrb", language)]
        logits = 100 * embeddings @ reference.classifier("gtsrb", language).T
        assert result["dataset"]["n_images"] == len(images) and result["dataset"]["n_classes"] == 43
        assert result["dataset"]["format"] == "folder" and result["prompts"]["origin"].endswith(f"{language}/gtsrb.json")
        assert result["metrics"]["acc1"] == pytest.approx(topk(logits, truth, 1), abs=1e-12)
        assert result["metrics"]["acc5"] == pytest.approx(topk(logits, truth, 5), abs=1e-12)
    lexicographic = sorted(str(i) for i in range(43))
    wrong_order = torch.tensor([lexicographic.index(str(label)) for label in labels])
    en_logits = 100 * embeddings @ reference.classifier("gtsrb", "en").T
    assert results[("gtsrb", "en")]["metrics"]["acc1"] >= 0.4
    assert topk(en_logits, wrong_order, 1) < results[("gtsrb", "en")]["metrics"]["acc1"]  # the fixture tells the orders apart


def test_multilabel_voc_through_the_cli(reference, cli_run):
    """11-point mAP against vision-evaluation's evaluator on softmax(100 * cosine)."""
    from vision_evaluation.evaluators import MeanAveragePrecisionNPointsEvaluator

    fixtures, results = cli_run
    images, targets = fixtures["voc-2007-classification"]
    embeddings = reference.images(images)
    for language in ("en", "pt"):
        result = results[("voc-2007-classification", language)]
        assert result["dataset"]["n_images"] == 26 and result["dataset"]["n_classes"] == 20
        logits = 100 * embeddings @ reference.classifier("voc-2007-classification", language).T
        evaluator = MeanAveragePrecisionNPointsEvaluator(11)
        evaluator.add_predictions(torch.softmax(logits.double(), dim=1).numpy(), targets)
        assert result["metrics"]["map_11point"] == pytest.approx(evaluator.get_report()["mAP_11_points"], abs=1e-9)


def test_wrong_layout_is_one_line_error(model_dir, tmp_path):
    split = tmp_path / "data" / "elevater" / "cifar-10" / "test"
    split.mkdir(parents=True)
    for index in range(3):  # images straight in the split folder: no class folders
        drawn(index).save(split / f"{index}.png")
    out = tmp_path / "out"
    done = clipbench("run", "--model", f"local-dir:{model_dir}", "--task", "cifar-10", "--data-root", str(tmp_path / "data"),
                     "--output", str(out))
    assert done.returncode == 1
    assert done.stderr.startswith("error: task 'cifar-10':") and "no class folders" in done.stderr
    assert "<path>/<split>/<class folder>/<image files>" in done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert not out.exists() or not list(out.rglob("*.json"))


# ---------------------------------------------------------------------------------------------- folder format, in process

def write_task(tmp_path: Path, dataset: str, num_classes: int | None = 3, name: str = "fixture") -> Path:
    classes = f"num_classes = {num_classes}\n" if num_classes else ""
    path = tmp_path / f"{name}.toml"
    path.write_text(
        f'name = "{name}"\nkind = "classification"\ndescription = "fixture"\nlanguages = ["en"]\nsplit = "test"\n'
        f'metrics = ["acc1"]\nmain_score = "acc1"\n{classes}\n[dataset]\nformat = "folder"\npath = "ds"\n{dataset}\n')
    return path


def image_folders(root: Path, counts: dict[str, int]) -> None:
    seed = 0
    for folder, count in counts.items():
        (root / "ds" / "test" / folder).mkdir(parents=True, exist_ok=True)
        for index in range(count):
            seed += 1
            drawn(seed).save(root / "ds" / "test" / folder / f"{index}.png")


@pytest.fixture
def root(tmp_path):
    return tmp_path / "root"


def folder_of(data, index: int) -> str:
    return Path(data.images.describe(index)).parent.name


@pytest.mark.parametrize("classes", ['classes = ["zebra", "apple", "mango"]', 'classes = "order.txt"'])
def test_class_order_comes_from_the_task(root, tmp_path, classes):
    image_folders(root, {"apple": 2, "mango": 1, "zebra": 3})
    (root / "ds" / "order.txt").write_text("zebra\napple\n\nmango\n")
    data = datasets.load(load_task_file(write_task(tmp_path, classes)), "en", root)
    order = ["zebra", "apple", "mango"]
    assert [order[label] for label in data.labels] == [folder_of(data, i) for i in range(len(data.images))]
    assert sorted(data.labels.tolist()) == [0, 0, 0, 1, 1, 2] and data.num_classes == 3
    assert data.images.open(0).size == (48, 40)


def test_default_order_is_sorted_and_numeric(root, tmp_path):
    image_folders(root, {str(i): 1 for i in range(12)})
    data = datasets.load(load_task_file(write_task(tmp_path, "", num_classes=12)), "en", root)
    assert [int(folder_of(data, i)) for i in range(12)] == data.labels.tolist() == list(range(12))


def test_class_subset_keeps_and_remaps(root, tmp_path):
    image_folders(root, {name: 2 for name in "abcde"})
    data = datasets.load(load_task_file(write_task(tmp_path, "class_subset = [3, 0, 4]")), "en", root)
    assert len(data.images) == 6 and data.num_classes == 3
    assert ["dae"[label] for label in data.labels] == [folder_of(data, i) for i in range(6)]


def test_fingerprint_follows_files_and_labels(root, tmp_path):
    image_folders(root, {"a": 1, "b": 1, "c": 1})
    first = datasets.load(load_task_file(write_task(tmp_path, "")), "en", root).images.fingerprint
    again = datasets.load(load_task_file(write_task(tmp_path, "")), "en", root).images.fingerprint
    reordered = datasets.load(load_task_file(write_task(tmp_path, 'classes = ["b", "a", "c"]')), "en", root).images.fingerprint
    assert first == again != reordered


def test_unzipped_multilabel_images(root, tmp_path):
    (root / "ds" / "test" / "JPEGImages").mkdir(parents=True)
    for index in range(3):
        drawn(index).save(root / "ds" / "test" / "JPEGImages" / f"{index}.png")
    (root / "ds" / "test_ic.txt").write_text("test.zip@JPEGImages/0.png 0,2\ntest.zip@JPEGImages/1.png 1\ntest.zip@JPEGImages/2.png 2,1,0\n")
    task = write_task(tmp_path, 'labels = "test_ic.txt"').read_text().replace('metrics = ["acc1"]\nmain_score = "acc1"',
                                                                               'metrics = ["map_11point"]\nmain_score = "map_11point"')
    (tmp_path / "fixture.toml").write_text(task)
    data = datasets.load(load_task_file(tmp_path / "fixture.toml"), "en", root)
    assert data.labels.tolist() == [[1, 0, 1], [0, 1, 0], [1, 1, 1]]
    assert data.images.open(2).size == (48, 40)


@pytest.mark.parametrize("counts, dataset, message", [
    (None, "", "does not exist"),
    ({"a": 1, "b": 1, "c": 0}, "", "holds no images"),
    ({"a": 1, "b": 1, "c": 1, "d": 1}, 'classes = ["a", "b", "c"]', "not in the task's class list"),
    ({"a": 1, "b": 1}, 'classes = ["a", "b", "c"]', "are missing from"),
    ({"a": 1, "b": 1, "c": 1}, 'classes = "absent.txt"', "does not exist"),
    ({"a": 1, "b": 1}, "", "2 class folders"),
    ({"a": 1, "b": 1, "c": 1}, 'labels = "test_ic.txt"', "does not exist"),
])
def test_layout_errors_name_the_task_and_the_fix(root, tmp_path, counts, dataset, message):
    if counts is not None:
        image_folders(root, counts)
    with pytest.raises(ClipbenchError) as caught:
        datasets.load(load_task_file(write_task(tmp_path, dataset)), "en", root)
    text = str(caught.value)
    assert text.startswith("task 'fixture': ") and message in text and "\n" not in text


def test_bad_options_are_rejected_when_the_task_loads(tmp_path):
    for dataset in ('classes = ["a", "a"]', "class_subset = [1, 1]", 'labels = "x.txt"\nclasses = ["a", "b"]', "colour = 1"):
        with pytest.raises(ClipbenchError, match="fixture.toml: field 'dataset"):
            load_task_file(write_task(tmp_path, dataset))


def test_data_root_default_paths_do_not_escape(tmp_path):
    for name in ELEVATER_20 + ["imagenet1k", "babel-imagenet"]:
        path = datasets.resolve_path(TASKS.get(name).dataset.options["path"], tmp_path)
        assert os.path.commonpath([path, tmp_path]) == str(tmp_path)


@pytest.mark.parametrize("target, problem", [("flickr30k-nope", "Unknown task 'flickr30k-nope'"), ("coco-cn", "no pt version"),
                                             ("shapes", "is classification, not retrieval")])
def test_language_tasks_are_checked(tmp_path, target, problem):
    """A language kept in another task (`flickr30k` in zh is `flickr30k-cn`) must name a task of the same kind
    that has that language; anything else is an error naming the file and the field."""
    for name in ("flickr30k-cn.toml", "coco-cn.toml", "shapes.toml"):
        (tmp_path / name).write_text((data_dir("tasks") / name).read_text(encoding="utf-8"), encoding="utf-8")
    text = (data_dir("tasks") / "flickr30k-cn.toml").read_text(encoding="utf-8")
    text = text.replace('name = "flickr30k-cn"', 'name = "mine"').replace(
        'languages = ["zh"]', f'languages = ["zh"]\nlanguage_tasks = {{ pt = "{target}" }}')
    (tmp_path / "mine.toml").write_text(text, encoding="utf-8")
    with pytest.raises(ClipbenchError) as error:
        task_registry(tmp_path)
    assert "mine.toml: field 'language_tasks'" in str(error.value) and problem in str(error.value), str(error.value)


def test_flickr30k_offers_chinese_through_flickr30k_cn():
    spec = TASKS.get("flickr30k")
    assert spec.languages == ["en", "pt"] and spec.language_tasks == {"zh": "flickr30k-cn"}
    assert "zh" in TASKS.get("flickr30k-cn").languages
