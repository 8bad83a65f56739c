"""CLIP_benchmark's published webdatasets, run by their CLIP_benchmark names: `--task wds/vtab/cifar10`.

The names are CLIP_benchmark's benchmark/webdatasets.txt (LAION-AI/CLIP_benchmark @
b4b6a33c8dc01fe44acf24f24f71ac7585d52571, the 1.6.2 release; unchanged at 48de38c1689fa6d8b4dd53e3370c669c3bb18117).
Each is a Hugging Face dataset repository `clip-benchmark/wds_<name>`, `<name>` with `/` made `-`: CLIP_benchmark's
`dataset_cleaned` (clip_benchmark/cli.py: `dataset_name.replace("/", "-")` after dropping `wds/`; its
benchmark/README.md runs them with `--dataset_root "https://huggingface.co/datasets/clip-benchmark/wds_{dataset_cleaned}/tree/main"`).

What is fetched is what CLIP_benchmark's `build_wds_dataset` reads (clip_benchmark/datasets/builder.py at that
commit): `<split>/nshards.txt` and the `<split>/<i>.tar` shards, and at the repository root `classnames.txt`,
`zeroshot_classification_templates.txt` and `dataset_type.txt` (`retrieval`, `multilabel`, or absent:
classification). The rest of a repository (its train split) is not downloaded.

The task kind comes from the name as CLIP_benchmark decides it (builder.py `get_dataset_default_task`: these
names are zero-shot retrieval, every other one classification), and `voc2007_multilabel` is multi-label
(`dataset_type.txt` says `multilabel`; its samples carry `npy` indicator vectors). The wds reader checks that the
repository's `dataset_type.txt` agrees, so a name and its data can never disagree silently.
"""

from __future__ import annotations

import difflib

from .errors import ClipbenchError
from .kinds import METRICS_BY_KIND
from .sources import WEBDATASET_FILES, HubWebdataset
from .specs import DatasetSpec, TaskSpec
from .wds_names import NAMES, SOURCE

PREFIX = "wds/"
HUB_ORG = "clip-benchmark"
# builder.py get_dataset_default_task: the retrieval names among them
RETRIEVAL = frozenset({"wds/mscoco_captions", "wds/flickr8k", "wds/flickr30k"})
MULTILABEL = frozenset({"wds/voc2007_multilabel"})
HUB_FILES = WEBDATASET_FILES  # what build_wds_dataset reads of the test split (builder.py), and nothing else


def short_name(name: str) -> str:
    """CLIP_benchmark's dataset name after `wds/` (`vtab/cifar10`): the key its custom template files use."""
    return name[len(PREFIX):]


def hub_repository(name: str) -> str:
    """`wds/vtab/cifar10` -> `clip-benchmark/wds_vtab-cifar10` (CLIP_benchmark's dataset_cleaned)."""
    return f"{HUB_ORG}/wds_{short_name(name).replace('/', '-')}"


def file_stem(name: str) -> str:
    """The name results of `name` are written under: `wds/vtab/cifar10` -> `wds-vtab-cifar10` (no folders).
    Task files may not take these names (tasks.py refuses them), so the stem is unambiguous."""
    return name.replace("/", "-")


RESERVED_STEMS = {file_stem(name): name for name in NAMES}


def layout_kind(dataset_type: str) -> tuple[str, list[str], str]:
    """(kind, metrics, main score) of data of this `dataset_type.txt` value (retrieval, multilabel, else
    classification), with clipbench's metric names: every retrieval metric; 11-point mAP for multi-label data;
    top-1/top-5 accuracy and mean per-class recall (main: acc1) for single-label data."""
    if dataset_type == "retrieval":
        return "retrieval", list(METRICS_BY_KIND["retrieval"]), "mean_recall"
    if dataset_type == "multilabel":
        return "classification", ["map_11point"], "map_11point"
    return "classification", ["acc1", "acc5", "mean_per_class_recall"], "acc1"


def kind_of(name: str) -> tuple[str, list[str], str]:
    """(kind, metrics, main score) of a known name, decided from the name as CLIP_benchmark does."""
    return layout_kind("retrieval" if name in RETRIEVAL else "multilabel" if name in MULTILABEL else "classification")


def is_webdataset_name(name: str) -> bool:
    return name.startswith(PREFIX)


def task(name: str) -> TaskSpec:
    """The task of a known name: the test split of its hub repository, read where huggingface_hub caches it
    (its `hub-webdataset` source, with the repository's own prompts), or from `<data root>/clip-benchmark/wds_<name>`
    when a copy is there."""
    if name not in NAMES:
        close = difflib.get_close_matches(name, NAMES, n=3, cutoff=0.5)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise ClipbenchError(f"Unknown webdataset '{name}': not one of CLIP_benchmark's {len(NAMES)} published webdatasets.{hint} "
                             f"See 'clipbench list tasks --filter \"wds/*\"' (a local folder of that name: pass ./{name})",
                             exit_code=2)
    kind, metrics, main = kind_of(name)
    repository = hub_repository(name)
    return TaskSpec(
        name=name, kind=kind, description=f"CLIP_benchmark webdataset {name} (hub: {repository})", languages=["en"],
        split="test", metrics=metrics, main_score=main,
        dataset=DatasetSpec(format="wds", path=repository, download=f"https://huggingface.co/datasets/{repository}"),
        sources=[HubWebdataset(kind="hub-webdataset", repository=repository, files=list(HUB_FILES))],
    )
