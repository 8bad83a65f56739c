"""Regenerate the classification prompt files (and Babel-ImageNet's class subset) from upstream lists.

    python -m benchmark.dev.prompts_convert /work/shared/data/prompts            # write the files
    python -m benchmark.dev.prompts_convert /work/shared/data/prompts --check    # exit 1 if a file differs

Input: the JSON copies of the upstream lists described in that folder's SOURCES.md (ELEVATER English,
CAPIVARA Portuguese, Chinese-CLIP Chinese). Output, deterministic (sorted, UTF-8, 2-space indent):

    prompts/en/<elevater task>.json      20 ELEVATER datasets (ImageNet en comes from open_clip, no file)
    prompts/pt/<elevater task>.json      the same 20, CAPIVARA's translations
    prompts/pt/imagenet1k.json           CAPIVARA's 1,000 manually translated ImageNet names
    prompts/pt/babel-imagenet.json       Babel-ImageNet PT: 667 ImageNet classes
    prompts/zh/imagenet1k.json           Chinese-CLIP's ImageNet names and templates
    tasks/babel-imagenet.toml            the task, with the 667 ImageNet indices as [dataset].class_subset

The only changes to the upstream data: templates' `{}` becomes `{c}`; a class given as a list of
synonyms (FER-2013) becomes its first synonym, as ELEVATER's and CAPIVARA's zero-shot code do
(`if type(classname) == list: classname = classname[0]`); CAPIVARA's Portuguese Food-101 list gets the
missing "tacos" back at index 96. Each change is written into the file's `notes`.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

ELEVATER = ("Computer-Vision-in-the-Wild/Elevater_Toolkit_IC", "00d0af78559d5f3d800ae4668210e6bd1f2f84b9")
CAPIVARA = ("hiaac-nlp/CAPIVARA", "375bc336d2fe7fdba230c7a3230ab596280bc614")
CHINESE_CLIP = ("OFA-Sys/Chinese-CLIP", "31863c707501bf1605d36842f43deb78793dbc5d")
CAPIVARA_RESOURCES = "clip_pt/src/evaluate/utils/resources"
LICENCE = "MIT"

# Food-101: CAPIVARA's list lacks "tacos" (English index 96); every later Portuguese name is shifted by one.
FOOD101_FIX = (96, "tacos", "tacos")  # (index, English name there, Portuguese name inserted)


def github(repo_commit: tuple[str, str], path: str) -> str:
    repo, commit = repo_commit
    return f"https://github.com/{repo}/blob/{commit}/{path}"


def task_name(key: str) -> str:
    """ELEVATER dataset key -> task / prompt-file name: lower case, anything outside [a-z0-9.-] (so also '_')
    becomes '-': eurosat_clip -> eurosat-clip."""
    return re.sub(r"[^a-z0-9.-]+", "-", key.lower()).strip("-")


def template(t: str) -> str:
    if t.count("{}") != 1 or "{c}" in t:
        raise SystemExit(f"template {t!r} does not have exactly one '{{}}' placeholder")
    return t.replace("{}", "{c}")


def classnames(raw: list) -> tuple[list[str], bool]:
    """Upstream names, a synonym list reduced to its first entry; True when that happened."""
    out, reduced = [], False
    for name in raw:
        if isinstance(name, list):
            out.append(name[0])
            reduced = True
        else:
            out.append(name)
    return out, reduced


def duplicates(names: list[str]) -> dict[str, list[int]]:
    seen: dict[str, list[int]] = {}
    for index, name in enumerate(names):
        seen.setdefault(name.strip(), []).append(index)
    return {name: where for name, where in seen.items() if len(where) > 1}


def prompt_file(task: str, language: str, source: str, names: list[str], templates: list[str], notes: list[str]) -> dict:
    dupes = duplicates(names)
    if dupes:
        listed = "; ".join(f"'{n}' at {', '.join(map(str, w))}" for n, w in sorted(dupes.items()))
        notes = notes + [f"Upstream gives the same name to distinct classes ({listed}); kept as published."]
    out = {"task": task, "language": language, "source": source, "licence": LICENCE}
    if notes:
        out["notes"] = " ".join(notes)
    out["classnames"] = names
    out["templates"] = [template(t) for t in templates]
    return out


def elevater_files(src: Path) -> dict[str, dict]:
    spec = json.loads((src / "elevater_spec.json").read_text(encoding="utf-8"))["datasets"]
    english = json.loads((src / "elevater.en.json").read_text(encoding="utf-8"))
    portuguese = json.loads((src / "elevater.pt.json").read_text(encoding="utf-8"))
    files: dict[str, dict] = {}
    keys = sorted(k for k in spec if k != "imagenet-1k")
    if len(keys) != 20 or sorted(portuguese) != keys:
        raise SystemExit(f"expected the 20 ELEVATER datasets in elevater_spec.json and elevater.pt.json, got {keys}")
    for key in keys:
        name, expected = task_name(key), spec[key]["num_classes"]
        en_names, en_reduced = classnames(english[key]["classnames"])
        pt_names, pt_reduced = classnames(portuguese[key]["classnames"])
        base = f"Converted by benchmark/prompts_convert.py from ELEVATER dataset '{key}': templates' '{{}}' became '{{c}}'."
        synonyms = ("Upstream lists synonyms for some classes; the first synonym is used, as ELEVATER's and CAPIVARA's "
                    "zero-shot code do (classname[0]).")
        en_notes = [base] + ([synonyms] if en_reduced else [])
        pt_notes = [base] + ([synonyms] if pt_reduced else [])
        if key == "food-101":
            index, en_there, pt_inserted = FOOD101_FIX
            if len(pt_names) != expected - 1 or en_names[index] != en_there or pt_inserted in pt_names:
                raise SystemExit("the Food-101 fix no longer applies: check the upstream Portuguese list")
            pt_names.insert(index, pt_inserted)
            pt_notes.append(
                f"Fixed: CAPIVARA's upstream list has {expected - 1} names for {expected} classes ('{en_there}', index "
                f"{index}, is missing, so every later name was shifted by one); '{pt_inserted}' was inserted at index {index}.")
        for lang, names in (("en", en_names), ("pt", pt_names)):
            if len(names) != expected:
                raise SystemExit(f"{key} {lang}: {len(names)} class names, elevater_spec.json says {expected}")
        files[f"en/{name}.json"] = prompt_file(
            name, "en", github(ELEVATER, "vision_benchmark/datasets/prompts.py"), en_names, english[key]["templates"], en_notes)
        files[f"pt/{name}.json"] = prompt_file(
            name, "pt", github(CAPIVARA, f"{CAPIVARA_RESOURCES}/portuguese_prompts.py"), pt_names,
            portuguese[key]["templates"], pt_notes)
    return files


def imagenet_files(src: Path) -> tuple[dict[str, dict], list[int]]:
    pt = json.loads((src / "imagenet.pt.json").read_text(encoding="utf-8"))
    zh = json.loads((src / "imagenet.zh.json").read_text(encoding="utf-8"))
    manual, babel = pt["MANUAL-TRANSLATED-PT"], pt["PT"]
    if manual["class_indices"] != list(range(1000)) or len(manual["classnames"]) != 1000:
        raise SystemExit("MANUAL-TRANSLATED-PT must name the 1,000 ImageNet classes in index order")
    indices = babel["class_indices"]
    if len(indices) != len(babel["classnames"]) or indices != sorted(set(indices)) or not 0 <= indices[0] <= indices[-1] < 1000:
        raise SystemExit("Babel-ImageNet PT: class_indices must be sorted, unique ImageNet indices, one per name")
    if len(zh["classnames"]) != 1000:
        raise SystemExit("imagenet.zh.json must name the 1,000 ImageNet classes")
    templates_pt = f"{CAPIVARA_RESOURCES}/imagenet_prompts.json (key PT)"
    files = {
        "pt/imagenet1k.json": prompt_file(
            "imagenet1k", "pt",
            f"{github(CAPIVARA, CAPIVARA_RESOURCES + '/babel_imagenet.json')} (key MANUAL-TRANSLATED-PT); "
            f"{github(CAPIVARA, templates_pt)}",
            manual["classnames"], pt["templates"],
            ["Converted by benchmark/prompts_convert.py: CAPIVARA's manual translation of the 1,000 ImageNet class names "
             "(index order) and its 80 Portuguese templates; templates' '{}' became '{c}'."]),
        "pt/babel-imagenet.json": prompt_file(
            "babel-imagenet", "pt",
            f"{github(CAPIVARA, CAPIVARA_RESOURCES + '/babel_imagenet.json')} (key PT); {github(CAPIVARA, templates_pt)}",
            babel["classnames"], pt["templates"],
            [f"Converted by benchmark/prompts_convert.py: Babel-ImageNet's Portuguese names for {len(indices)} of the "
             "1,000 ImageNet classes, in ImageNet index order; label i is ImageNet class class_subset[i] of "
             "tasks/babel-imagenet.toml. Templates as CAPIVARA's ImageNet evaluation; '{}' became '{c}'."]),
        "zh/imagenet1k.json": prompt_file(
            "imagenet1k", "zh", github(CHINESE_CLIP, "cn_clip/eval/imagenet_zeroshot_templates.py"),
            zh["classnames"], zh["templates"],
            ["Converted by benchmark/prompts_convert.py: Chinese-CLIP's ImageNet class names (index order) and "
             "templates; '{}' became '{c}'."]),
    }
    return files, indices


def dump(data: dict) -> str:
    return json.dumps(data, ensure_ascii=False, indent=2) + "\n"


def babel_task(indices: list[int]) -> str:
    rows = [", ".join(str(i) for i in indices[start:start + 20]) for start in range(0, len(indices), 20)]
    subset = "[\n" + "".join(f"  {row},\n" for row in rows) + "]"
    return f'''# Generated by `python -m benchmark.dev.prompts_convert` from CAPIVARA's babel_imagenet.json (key PT); do not edit.
name = "babel-imagenet"
kind = "classification"
description = "Babel-ImageNet (Portuguese): the {len(indices)} ImageNet-1k classes with Babel-ImageNet Portuguese names, ImageNet validation images of those classes only (CAPIVARA's ImageNet protocol)."
languages = ["pt"]
split = "val"
metrics = ["acc1", "acc5"]
main_score = "acc1"
prompts = "babel-imagenet"
num_classes = {len(indices)}
expected_images = {50 * len(indices)}

[dataset]
format = "folder"
path = "imagenet1k"
# ImageNet indices (sorted class folders: wnids) kept, in label order: label i is ImageNet class class_subset[i].
class_subset = {subset}
{BABEL_SOURCES}'''


# the task's typed sources (benchmark.sources): no hub source of its own
BABEL_SOURCES = """
# No hub source: it reads imagenet1k's folder with a class subset; a mirror of all 1,000 classes (clip-benchmark/wds_imagenet1k, a source of imagenet1k) is not used for a subset yet.
[[sources]]
kind = "manual"
how = "the ImageNet-1k validation folder of task imagenet1k (<data root>/imagenet1k/val/<wnid>/...; ILSVRC2012_img_val.tar from https://image-net.org after accepting its terms of access)"
why = "it reads imagenet1k's folder with a class subset; a mirror of all 1,000 classes (clip-benchmark/wds_imagenet1k, a source of imagenet1k) is not used for a subset yet"
url = "https://image-net.org"
"""


def generate(src: Path) -> dict[str, str]:
    files = elevater_files(src)
    imagenet, indices = imagenet_files(src)
    files.update(imagenet)
    out = {f"prompts/{rel}": dump(data) for rel, data in sorted(files.items())}
    out["tasks/babel-imagenet.toml"] = babel_task(indices)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmark.dev.prompts_convert", description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="folder with elevater.en.json, elevater.pt.json, imagenet.*.json ...")
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[2],
                        help="checkout to write prompts/ and tasks/ into (default: this checkout)")
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if any file differs")
    args = parser.parse_args(argv)
    outputs = generate(args.source)
    stale = []
    for rel, text in outputs.items():
        path = args.root / rel
        current = path.read_text(encoding="utf-8") if path.is_file() else None
        if current == text:
            continue
        stale.append(rel)
        if not args.check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
    verb = "differ" if args.check else "written"
    print(f"{len(outputs)} files, {len(stale)} {verb}" + (": " + ", ".join(stale) if stale else ""), file=sys.stderr)
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
