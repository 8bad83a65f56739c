"""Derive each registered task's mapping onto its webdataset mirror from the two published class-name lists.

    python -m benchmark.dev.mirror_mappings            # write tasks/**/mappings/<task>.json
    python -m benchmark.dev.mirror_mappings --check    # exit 1 if a file differs from what would be written

For a task, the two lists are: the task's English class names (its prompt file, ELEVATER's label order; for
ImageNet open_clip's IMAGENET_CLASSNAMES) and the mirror's `classnames.txt` as CLIP_benchmark writes it
(clip_benchmark/webdataset_builder.py `convert_dataset`: `print(*dataset.classes, sep="\\n")`, where
`dataset.classes` is what clip_benchmark/datasets/builder.py sets for that dataset; see MIRROR_NAMES). Class i of
the mirror gets task label j when the two names are equal after `benchmark.sources.normalise`, or when the pair
is in ALIASES (reviewed by hand, each with its reason); a name both lists use for several classes pairs in order
of occurrence. Every mirror class must find exactly one task class and the reverse, or the script stops: an
unproven mapping is never written.

The hub was not reachable when this was written: the mirrors' own classnames.txt could not be read. What was
checked instead is said per list in MIRROR_NAMES; the reader checks each downloaded classnames.txt against the
written list before anything is evaluated (benchmark.data.mirror).
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
from pathlib import Path

from benchmark.paths import data_dir
from benchmark.sources import normalise

CLIP_BENCHMARK = "LAION-AI/CLIP_benchmark@b4b6a33c8dc01fe44acf24f24f71ac7585d52571 (release 1.6.2)"

# CIFAR-10's label_names (batches.meta), which tfds's cifar10 ClassLabel carries; vtab/cifar10 leaves
# `classes` None in builder.py build_vtab_dataset, so VTABIterableDataset takes tfds's names. Written one per
# line they make 60 bytes, the size the hub lists for classnames.txt of clip-benchmark/wds_vtab-cifar10 (main,
# commit d5fc63f, "Initial upload" by djghosh).
CIFAR10 = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
# CIFAR-100's fine_label_names (meta), alphabetical, which tfds's cifar100 ClassLabel carries (vtab/cifar100:
# `classes` None, as for cifar10). One per line: 725 bytes, the size the hub lists for classnames.txt of
# clip-benchmark/wds_vtab-cifar100 (main, commit c181ce0).
CIFAR100 = [
    "apple", "aquarium_fish", "baby", "bear", "beaver", "bed", "bee", "beetle", "bicycle", "bottle", "bowl", "boy",
    "bridge", "bus", "butterfly", "camel", "can", "castle", "caterpillar", "cattle", "chair", "chimpanzee", "clock",
    "cloud", "cockroach", "couch", "crab", "crocodile", "cup", "dinosaur", "dolphin", "elephant", "flatfish", "forest",
    "fox", "girl", "hamster", "house", "kangaroo", "keyboard", "lamp", "lawn_mower", "leopard", "lion", "lizard",
    "lobster", "man", "maple_tree", "motorcycle", "mountain", "mouse", "mushroom", "oak_tree", "orange", "orchid",
    "otter", "palm_tree", "pear", "pickup_truck", "pine_tree", "plain", "plate", "poppy", "porcupine", "possum",
    "rabbit", "raccoon", "ray", "road", "rocket", "rose", "sea", "seal", "shark", "shrew", "skunk", "skyscraper",
    "snail", "snake", "spider", "squirrel", "streetcar", "sunflower", "sweet_pepper", "table", "tank", "telephone",
    "television", "tiger", "tractor", "train", "trout", "tulip", "turtle", "wardrobe", "whale", "willow_tree", "wolf",
    "woman", "worm",
]
# DTD's 47 categories (its image folder names), alphabetical, which tfds's dtd ClassLabel carries (vtab/dtd:
# `classes` None). One per line: 394 bytes, the size the hub lists for classnames.txt of djghosh/wds_vtab-dtd_test
# (the same uploader's DTD test split); the size of clip-benchmark/wds_vtab-dtd's own file was not found.
DTD = [
    "banded", "blotchy", "braided", "bubbly", "bumpy", "chequered", "cobwebbed", "cracked", "crosshatched",
    "crystalline", "dotted", "fibrous", "flecked", "freckled", "frilly", "gauzy", "grid", "grooved", "honeycombed",
    "interlaced", "knitted", "lacelike", "lined", "marbled", "matted", "meshed", "paisley", "perforated", "pitted",
    "pleated", "polka-dotted", "porous", "potholed", "scaly", "smeared", "spiralled", "sprinkled", "stained",
    "stratified", "striped", "studded", "swirly", "veined", "waffled", "woven", "wrinkled", "zigzagged",
]
# torchvision.datasets.RenderedSST2: `self.classes = ["negative", "positive"]` (pytorch/vision,
# torchvision/datasets/rendered_sst2.py; builder.py renderedsst2 keeps it)
RENDERED_SST2 = ["negative", "positive"]


def _clip_benchmark_file(name: str) -> Path:
    import clip_benchmark

    return Path(clip_benchmark.__file__).parent / name


def en_classnames(key: str) -> list[str]:
    """CLIP_benchmark's datasets/en_classnames.json[key], from the installed package (1.6.2)."""
    return json.loads(_clip_benchmark_file("datasets/en_classnames.json").read_text(encoding="utf-8"))[key]


def voc2007_categories() -> list[str]:
    """`object_categories` of CLIP_benchmark's datasets/voc2007.py (PASCALVoc2007 sets `self.classes` to it)."""
    tree = ast.parse(_clip_benchmark_file("datasets/voc2007.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "object_categories" for t in node.targets):
            return list(ast.literal_eval(node.value))
    raise SystemExit("object_categories not found in clip_benchmark/datasets/voc2007.py")


# task -> (repository, the mirror's class names, where they come from)
MIRROR_NAMES = {
    "caltech-101": ("clip-benchmark/wds_vtab-caltech101", lambda: en_classnames("caltech101_vtab"),
                    f"{CLIP_BENCHMARK} clip_benchmark/datasets/en_classnames.json key caltech101_vtab "
                    "(builder.py build_vtab_dataset: caltech101 classes = classnames['caltech101_vtab'])"),
    "cifar-10": ("clip-benchmark/wds_vtab-cifar10", lambda: list(CIFAR10),
                 "tfds cifar10 label names (builder.py build_vtab_dataset leaves classes None); see CIFAR10 in "
                 "benchmark/dev/mirror_mappings.py"),
    "cifar-100": ("clip-benchmark/wds_vtab-cifar100", lambda: list(CIFAR100),
                  "tfds cifar100 label names (builder.py build_vtab_dataset leaves classes None); see CIFAR100 in "
                  "benchmark/dev/mirror_mappings.py"),
    "country211": ("clip-benchmark/wds_country211", lambda: en_classnames("country211"),
                   f"{CLIP_BENCHMARK} clip_benchmark/datasets/en_classnames.json key country211 (builder.py country211)"),
    "dtd": ("clip-benchmark/wds_vtab-dtd", lambda: list(DTD),
            "tfds dtd label names (builder.py build_vtab_dataset leaves classes None); see DTD in "
            "benchmark/dev/mirror_mappings.py"),
    "gtsrb": ("clip-benchmark/wds_gtsrb", lambda: en_classnames("gtsrb"),
              f"{CLIP_BENCHMARK} clip_benchmark/datasets/en_classnames.json key gtsrb (builder.py gtsrb)"),
    "kitti-distance": ("clip-benchmark/wds_vtab-kitti_closest_vehicle_distance",
                       lambda: en_classnames("kitti_closest_vehicle_distance"),
                       f"{CLIP_BENCHMARK} clip_benchmark/datasets/en_classnames.json key kitti_closest_vehicle_distance "
                       "(builder.py build_vtab_dataset kitti_closest_vehicle_distance)"),
    "mnist": ("clip-benchmark/wds_mnist", lambda: en_classnames("mnist"),
              f"{CLIP_BENCHMARK} clip_benchmark/datasets/en_classnames.json key mnist (builder.py mnist)"),
    "oxford-iiit-pets": ("clip-benchmark/wds_vtab-pets", lambda: en_classnames("pets"),
                         f"{CLIP_BENCHMARK} clip_benchmark/datasets/en_classnames.json key pets "
                         "(builder.py build_vtab_dataset pets)"),
    "patch-camelyon": ("clip-benchmark/wds_vtab-pcam", lambda: en_classnames("pcam"),
                       f"{CLIP_BENCHMARK} clip_benchmark/datasets/en_classnames.json key pcam "
                       "(builder.py build_vtab_dataset pcam)"),
    "rendered-sst2": ("clip-benchmark/wds_renderedsst2", lambda: list(RENDERED_SST2),
                      "torchvision RenderedSST2.classes (pytorch/vision torchvision/datasets/rendered_sst2.py), kept by "
                      f"{CLIP_BENCHMARK} builder.py renderedsst2"),
    "voc-2007-classification": ("clip-benchmark/wds_voc2007_multilabel", voc2007_categories,
                                f"{CLIP_BENCHMARK} clip_benchmark/datasets/voc2007.py object_categories "
                                "(PASCALVoc2007.classes; builder.py voc2007_multilabel)"),
    "imagenet1k": ("clip-benchmark/wds_imagenet1k", lambda: en_classnames("imagenet1k"),
                   f"{CLIP_BENCHMARK} clip_benchmark/datasets/en_classnames.json key imagenet1k (builder.py imagenet1k)"),
}

# (mirror name, task name) pairs that name the same class in other words, each with its reason. Reviewed by hand.
ALIASES: dict[tuple[str, str], str] = {}


def task_names(task) -> tuple[list[str], str]:
    from benchmark import prompts

    found = prompts.load(task.prompts, "en", task.num_classes)
    origin = found.origin
    if origin.startswith(prompts.OPEN_CLIP_IMAGENET):  # its version is in the origin; the names are what count
        origin = "open_clip IMAGENET_CLASSNAMES (benchmark/prompts.py)"
    if origin.startswith(str(data_dir("prompts"))):
        origin = "prompts/" + Path(origin).relative_to(data_dir("prompts")).as_posix()
    return list(found.classnames), origin


def derive(task, repository: str, mirror: list[str], provenance: str) -> dict:
    """The mapping document for `task`, or SystemExit naming the classes that do not pair up."""
    names, origin = task_names(task)
    by_form: dict[str, list[int]] = {}
    for j, name in enumerate(names):
        by_form.setdefault(normalise(name), []).append(j)
    labels, aliases, problems = [], [], []
    for i, name in enumerate(mirror):
        # a name both lists give several classes (ImageNet's "missile", "sunglasses", kept as published) pairs in
        # order of occurrence: its k-th use in the mirror with its k-th use in the task's list
        same = by_form.get(normalise(name), [])
        matches = [same.pop(0)] if same else []
        matches += [j for j, other in enumerate(names) if (name, other) in ALIASES and j not in matches]
        if len(matches) != 1:
            problems.append(f"mirror class {i} {name!r} matches task classes {matches}")
            continue
        j = matches[0]
        labels.append(j)
        if normalise(name) != normalise(names[j]):
            aliases.append({"mirror": name, "task": names[j], "reason": ALIASES[(name, names[j])]})
    if not problems and sorted(labels) != list(range(len(names))):
        problems.append(f"task classes {sorted(set(range(len(names))) - set(labels))[:5]} have no mirror class")
    if problems or len(mirror) != len(names):
        raise SystemExit(f"{task.name}: no proven mapping onto {repository} ({len(mirror)} vs {len(names)} classes): "
                         + "; ".join(problems[:5]))
    return {"repository": repository, "classnames": mirror, "labels": labels, "task_classnames": origin,
            "mirror_classnames": provenance, "aliases": aliases}


def mapping_file(task) -> Path:
    return Path(task.source_file).parent / "mappings" / f"{task.name}.json"


def render(document: dict) -> str:
    return json.dumps(document, ensure_ascii=False, indent=1) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when a mapping file differs")
    args = parser.parse_args(argv)
    from benchmark.tasks import task_registry

    tasks = task_registry()
    stale = []
    for name, (repository, names, provenance) in MIRROR_NAMES.items():
        task = tasks.get(name)
        text = render(derive(task, repository, names(), provenance))
        path = mapping_file(task)
        if args.check:
            if not path.is_file() or path.read_text(encoding="utf-8") != text:
                stale.append(str(path))
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        permuted = sum(i != j for i, j in enumerate(json.loads(text)["labels"]))
        print(f"{name}: {path} ({len(json.loads(text)['labels'])} classes, {permuted} not at their task index)")
    if stale:
        print("stale: " + ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
