"""CLIP_benchmark's result files, both ways (issue 12).

CLIP_benchmark (LAION-AI/CLIP_benchmark; pip 1.6.2, `clip_benchmark/cli.py`, `run()`) writes one JSON per
(model, dataset, language): `{"dataset", "model", "pretrained", "task", "metrics", "language"}`, plus
`classnames`/`templates` when asked (`--dump_classnames`, `--dump_templates`); files written before its
`--language` flag (commit 532a99e, 2022-11-14, when every run was English) have no `language`. Its `build`
subcommand flattens such files into one long CSV.

Reading (`is_clip_benchmark`, `imported_payload`): such a file becomes a clipbench result payload (results.py
validates it as a `Result`) with our names, and an `imported` part saying what it was read from. It carries
no dataset fingerprint, prompts, split, precision or protocol, because the file records none: the result's
group is the model's CLIP_benchmark full name with " (imported)" appended, so it is a row of its own, never
averaged with clipbench results. Only the two zero-shot tasks are read; anything else (linear_probe,
captioning, image_caption_selection) and any metric key outside the list below is refused, naming the file
and the key.

Names. Metrics: acc1, acc5, mean_per_class_recall and mean_average_precision are the same names on both
sides; image_retrieval_recall@K (a caption finds its image: text->image) is our t2i_recall@K and
text_retrieval_recall@K (an image finds one of its captions) our i2t_recall@K, for K in 1, 5, 10 (other
K's, from --recall_k, have no clipbench metric: left out with a note). When all three K's of a direction are
there, its mean recall (and with both directions, mean_recall) is derived, as our retrieval kind defines them,
and listed under `imported.derived`. Datasets (the split is not in the file: CLIP_benchmark's default, test, is
assumed): its published webdatasets keep their names in English (`wds/vtab/pcam`, which is also `clipbench run
--task wds/vtab/pcam`); `SAME_DATA` maps its other datasets to our task where both evaluate the same images of the
same split (`cifar10` is our `cifar-10`); every other one keeps its name behind "cb:" (`cb:sun397`, and
`cb:wds/vtab/pcam` in another language). Languages: its classification class-name files are named `cn` and `jp`,
which are our `zh` and `ja`.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Callable

from .errors import ClipbenchError
from .wds_names import NAMES

SOURCE = "CLIP_benchmark"
MARK = " (imported)"  # appended to the group: imported results are rows of their own
PROTOCOL = "unrecorded (CLIP_benchmark import)"  # what `Result.protocol_name` says of them
UNMAPPED = "cb:"  # a CLIP_benchmark dataset that is not one of our tasks keeps its name behind this
EXPORTED = "clipbench/"  # one of our tasks that is not a CLIP_benchmark dataset, in an exported file

KIND_OF_TASK = {"zeroshot_classification": "classification", "zeroshot_retrieval": "retrieval"}
TASK_OF_KIND = {kind: task for task, kind in KIND_OF_TASK.items()}
CLASSIFICATION_METRICS = ("acc1", "acc5", "mean_per_class_recall", "mean_average_precision")
RECALL_KS = (1, 5, 10)  # benchmark.metrics.RECALL_KS; tests/test_clip_benchmark_interop.py checks they agree
DIRECTIONS = (("image_retrieval", "t2i"), ("text_retrieval", "i2t"))  # theirs, ours
RECALL = re.compile(r"(image_retrieval|text_retrieval)_recall@(\d+)")
LANGUAGES = {"cn": "zh", "jp": "ja"}  # CLIP_benchmark's classification language codes -> ours

# CLIP_benchmark's published webdatasets (benchmark.wds_names):
# `clipbench run --task wds/<name>` evaluates the same test split under the same name (issue 12), so an English
# result of one of these keeps its name. CLIP_benchmark reads a webdataset's own class names and templates
# whatever --language says, so a result of another language is not what it says: it stays under "cb:".
PUBLISHED_WDS = frozenset(NAMES)

# (CLIP_benchmark dataset names, our task, its main score, languages (None: any), why the images are the same).
# The vtab/ names are VTAB's splits (task_adaptation), whose test split is the official one for these datasets.
# Retrieval is mapped for English only: CLIP_benchmark's mscoco_captions has English captions whatever
# --language says, and its flickr30k zh captions are not Flickr30k-CN's split. Left unmapped on purpose, the
# sizes or labels differing or unverified: caltech101 (torchvision: no split; VTAB: 6,085 images, ELEVATER
# 6,084), dtd (which of ten partitions), eurosat and resisc45 (other splits), fer2013 (7,178 test images,
# ELEVATER 3,589), voc2007 (cropped objects) and voc2007_multilabel (same 4,952 images, labels with 'difficult'
# objects not checked against ELEVATER's), pcam and kitti (same sizes, images not checked).
SAME_DATA = (
    (("cifar10", "vtab/cifar10"), "cifar-10", "acc1", None, "CIFAR-10's official test split, 10,000 images"),
    (("cifar100", "vtab/cifar100"), "cifar-100", "acc1", None, "CIFAR-100's official test split, 10,000 images"),
    (("imagenet1k",), "imagenet1k", "acc1", None, "ILSVRC-2012 validation, 50,000 images"),
    (("food101",), "food-101", "acc1", None, "Food-101's official test split, 25,250 images"),
    (("mnist",), "mnist", "acc1", None, "MNIST's official test split, 10,000 images"),
    (("gtsrb",), "gtsrb", "acc1", None, "GTSRB's official test split, 12,630 images"),
    (("country211",), "country211", "acc1", None, "Country211's test split, 21,100 images"),
    (("cars",), "stanford-cars", "acc1", None, "Stanford Cars' official test split, 8,041 images"),
    (("fgvc_aircraft",), "fgvc-aircraft-2013b-variants102", "mean_per_class_recall", None,
     "FGVC-Aircraft's test split (variants), 3,333 images"),
    (("pets", "vtab/pets"), "oxford-iiit-pets", "mean_per_class_recall", None,
     "Oxford-IIIT Pet's official test split, 3,669 images"),
    (("flowers", "vtab/flowers"), "oxford-flower-102", "mean_per_class_recall", None,
     "Oxford Flowers-102's official test split, 6,149 images"),
    (("renderedsst2",), "rendered-sst2", "acc1", None, "Rendered SST2's test split, 1,821 images"),
    (("mscoco_captions",), "mscoco", "mean_recall", ("en",), "MS COCO Karpathy 5k test, every English caption"),
    (("flickr30k",), "flickr30k", "mean_recall", ("en",), "Flickr30k Karpathy 1k test, English captions"),
)
_BY_NAME = {name: entry for entry in SAME_DATA for name in entry[0]}
_BY_TASK = {entry[1]: entry for entry in SAME_DATA}
FALLBACK_MAIN = {"classification": ("acc1", "mean_average_precision"),
                 "retrieval": ("mean_recall", *(f"{d}_recall@{k}" for _, d in DIRECTIONS for k in RECALL_KS))}


def is_clip_benchmark(payload) -> bool:
    """A JSON document CLIP_benchmark's cli wrote (or one in its shape): no schema_version, and the `pretrained`
    and `metrics` that every version of its dump has."""
    return isinstance(payload, dict) and "schema_version" not in payload and "pretrained" in payload and "metrics" in payload


def our_language(kind: str, language: str) -> str:
    return LANGUAGES.get(language, language) if kind == "classification" else language


def their_language(kind: str, language: str) -> str:
    back = {ours: theirs for theirs, ours in LANGUAGES.items()}
    return back.get(language, language) if kind == "classification" else language


def our_task(dataset: str, language: str) -> tuple[str, str | None]:
    """Our task for a CLIP_benchmark dataset in `language` (ours), and the main score it has there (None: not one
    of our tasks)."""
    if dataset.startswith(EXPORTED):  # written by `clipbench export`: our own task name
        return dataset[len(EXPORTED):], None
    if dataset in PUBLISHED_WDS and language == "en":
        return dataset, None
    entry = _BY_NAME.get(dataset)
    if entry is not None and (entry[3] is None or language in entry[3]):
        return entry[1], entry[2]
    return UNMAPPED + dataset, None


def their_dataset(task: str, language: str) -> str:
    """The CLIP_benchmark dataset name of our task in `language` (ours), for `clipbench export`."""
    entry = _BY_TASK.get(task)
    if entry is not None and (entry[3] is None or language in entry[3]):
        return entry[0][0]
    if task.startswith(UNMAPPED):
        return task[len(UNMAPPED):]
    if task in PUBLISHED_WDS:
        return task
    return EXPORTED + task


def their_metric(kind: str, metric: str) -> str | None:
    """The CLIP_benchmark name of one of our metrics (None: it has none)."""
    if kind == "classification":
        return metric if metric in CLASSIFICATION_METRICS else None
    for theirs, ours in DIRECTIONS:
        for k in RECALL_KS:
            if metric == f"{ours}_recall@{k}":
                return f"{theirs}_recall@{k}"
    return None


def their_metric_order(kind: str) -> list[str]:
    """Our metric names in the order CLIP_benchmark writes theirs (retrieval: per K, image then text)."""
    if kind == "classification":
        return list(CLASSIFICATION_METRICS)
    return [f"{ours}_recall@{k}" for k in RECALL_KS for _, ours in DIRECTIONS]


# ------------------------------------------------------------------------------------------------- reading

def _refuse(path: Path, field: str, problem: str, fix: str = "fix the file or move it out of the results") -> ClipbenchError:
    return ClipbenchError(f"{path}: field '{field}': {problem}; {fix}", exit_code=2)


def _text(path: Path, raw: dict, key: str) -> str:
    if key not in raw:
        raise _refuse(path, key, "missing (CLIP_benchmark's cli always writes it)")
    if not isinstance(raw[key], str):
        raise _refuse(path, key, f"not a string ({raw[key]!r})")
    return raw[key]


def _number(value) -> bool:
    return value is None or (isinstance(value, (int, float)) and not isinstance(value, bool))


def _mapped_metrics(path: Path, raw: dict, kind: str, note: Callable[[str], None]) -> tuple[dict, dict, list]:
    metrics = raw["metrics"]
    if not isinstance(metrics, dict) or not metrics:
        raise _refuse(path, "metrics", "not an object of metric values" if not isinstance(metrics, dict) else "empty")
    ours, names, left_out = {}, {}, []
    for key, value in metrics.items():
        if not _number(value):
            raise _refuse(path, f"metrics.{key}", f"not a number ({value!r})")
        match = RECALL.fullmatch(key)
        if kind == "classification" and key in CLASSIFICATION_METRICS:
            name = key
        elif kind == "retrieval" and match:
            if int(match.group(2)) not in RECALL_KS:
                left_out.append(key)
                continue
            name = f"{dict(DIRECTIONS)[match.group(1)]}_recall@{int(match.group(2))}"
        else:
            known = CLASSIFICATION_METRICS if kind == "classification" else ("image_retrieval_recall@K", "text_retrieval_recall@K")
            raise _refuse(path, f"metrics.{key}", f"not a {raw['task']} metric clipbench reads (it reads {', '.join(known)})")
        ours[name], names[name] = (float(value) if value is not None else None), key
    if left_out:
        note(f"note: {path}: left out {', '.join(left_out)}: clipbench has recall metrics at K = "
             f"{', '.join(map(str, RECALL_KS))} only")
    return ours, names, left_out


def _derive(metrics: dict) -> list[str]:
    """The mean recalls, as benchmark.kinds.retrieval defines them, where every recall they average is there."""
    derived = []
    for _, direction in DIRECTIONS:
        values = [metrics.get(f"{direction}_recall@{k}") for k in RECALL_KS]
        if all(v is not None and not math.isnan(v) for v in values):
            metrics[f"{direction}_mean_recall"] = sum(values) / len(values)
            derived.append(f"{direction}_mean_recall")
    if len(derived) == 2:
        metrics["mean_recall"] = (metrics["t2i_mean_recall"] + metrics["i2t_mean_recall"]) / 2
        derived.append("mean_recall")
    return derived


def imported_payload(path: Path, raw: dict, note: Callable[[str], None]) -> dict:
    """A CLIP_benchmark result (`is_clip_benchmark`) as a clipbench result payload, less schema_version."""
    dataset, model, pretrained, task = (_text(path, raw, key) for key in ("dataset", "model", "pretrained", "task"))
    written_language = _text(path, raw, "language") if "language" in raw else None
    kind = KIND_OF_TASK.get(task)
    if kind is None:
        raise _refuse(path, "task", f"'{task}' is a CLIP_benchmark task clipbench does not evaluate (it reads "
                      f"{' and '.join(KIND_OF_TASK)} results)", "move the file out of the results")
    language = our_language(kind, written_language if written_language is not None else "en")
    metrics, names, left_out = _mapped_metrics(path, raw, kind, note)
    derived = _derive(metrics) if kind == "retrieval" else []
    ours, main = our_task(dataset, language)
    candidates = ((main,) if main else ()) + FALLBACK_MAIN[kind]
    main_score = next((m for m in candidates if metrics.get(m) is not None), next(iter(metrics)))
    fullname = f"{model} {pretrained}".strip()  # CLIP_benchmark build's model_fullname (less its blank)
    imported = {"source": SOURCE, "file": str(path), "dataset": dataset, "task": task, "model": model,
                "pretrained": pretrained, "language": written_language, "metrics": names}
    if derived:
        imported["derived"] = derived
    if left_out:
        imported["left_out"] = left_out
    return {"task": ours, "kind": kind, "language": language, "main_score": main_score, "metrics": metrics,
            "model": {"name": fullname, "group": fullname + MARK}, "dataset": {}, "prompts": None,
            "imported": imported}


# ------------------------------------------------------------------------------------------------- writing

def file_name(dump: dict) -> str:
    """CLIP_benchmark's default --output, "{dataset}_{pretrained}_{model}_{language}_{task}.json", with its
    slugs (a leading wds/ dropped and / as _ in the dataset; a checkpoint path's base name), and / as _ in the
    model too (an hf-hub:org/name would make CLIP_benchmark write into a folder)."""
    dataset = dump["dataset"][len("wds/"):] if dump["dataset"].startswith("wds/") else dump["dataset"]
    pretrained = Path(dump["pretrained"]).name if "/" in dump["pretrained"] else dump["pretrained"]
    return "{}_{}_{}_{}_{}.json".format(dataset.replace("/", "_"), pretrained, dump["model"].replace("/", "_"),
                                        dump["language"], dump["task"])


def build_rows(dumps: list[dict]) -> tuple[list[str], list[dict]]:
    """The rows of CLIP_benchmark's `build` (cli.main_build: the metrics, then the file's other keys, less
    `metrics`, then model_fullname = model + ' ' + pretrained) and their columns in order of first appearance
    (build collects them in a set, whose order changes from one Python process to the next)."""
    rows, fields = [], {}
    for data in dumps:
        row = dict(data["metrics"])
        row.update(data)
        del row["metrics"]
        row["model_fullname"] = row["model"] + " " + row["pretrained"]
        fields.update(dict.fromkeys(row))
        rows.append(row)
    return list(fields), rows
