"""The README's table of every registered task's data: split size, where clipbench can fetch it from, and what
cannot be fetched automatically and why, made from the task files themselves.

    python -m benchmark.dev.datasets_table          # print the table
    python -m benchmark.dev.datasets_table --check  # exit 1 when README.md does not hold it (tests run this)

The README holds it between the markers below, so it cannot drift from the task files.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .. import data as datasets
from ..paths import data_dir
from ..specs import TaskSpec
from ..tasks import task_registry

BEGIN = "<!-- datasets table: python -m benchmark.dev.datasets_table -->"
END = "<!-- end of datasets table -->"


def split_size(task: TaskSpec) -> str:
    if task.expected_images is None:
        return "-"
    size = f"{task.expected_images:,} images"
    if task.expected_texts:
        size += f", {task.expected_texts:,} texts"
    if task.num_classes:
        size += f", {task.num_classes:,} classes"
    return size


def fetchable(task: TaskSpec) -> str:
    """The hub sources, each with the languages it serves when not all."""
    cells = []
    for source in task.hub_sources():
        languages = getattr(source, "languages", None)
        served = f" ({', '.join(languages)})" if languages else ""
        cells.append(f"`{source.repository}`{served}")
    return "; ".join(cells) or "-"


def by_hand(task: TaskSpec) -> str:
    """What cannot be fetched and why: a manual source's reason, a folder-only language, or nothing."""
    if datasets.location(task) is None:
        return "nothing to fetch: drawn at run time"
    manual = [source for source in task.sources if source.kind == "manual"]
    if manual:
        return manual[0].why.replace("|", "/").replace("\n", " ")
    served = set()
    for source in task.hub_sources():
        languages = getattr(source, "languages", None)
        served |= set(languages or task.languages)
    left = [language for language in task.languages if language not in served]
    if task.hub_sources() and left:
        return f"{', '.join(left)}: the folder only (no public copy of those captions)"
    if not task.hub_sources():
        return "no public copy is registered; see the task file's download"
    return ""


def table() -> str:
    rows = ["| task | kind | languages | split | fetched from the hub | by hand, and why |",
            "|---|---|---|---|---|---|"]
    for name, task in sorted(task_registry().items()):
        if Path(task.source_file).parent.name == "suites":
            continue
        rows.append(f"| `{name}` | {task.kind} | {', '.join(task.languages)} | {split_size(task)} | "
                    f"{fetchable(task)} | {by_hand(task)} |")
    return "\n".join(rows)


def readme_block(readme: str) -> str | None:
    if BEGIN not in readme or END not in readme:
        return None
    return readme.split(BEGIN, 1)[1].split(END, 1)[0].strip()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare with README.md instead of printing")
    args = parser.parse_args(argv)
    made = table()
    if not args.check:
        print(made)
        return 0
    readme = data_dir("tasks").parent / "README.md"
    held = readme_block(readme.read_text(encoding="utf-8")) if readme.exists() else None
    if held != made:
        print(f"{readme}: the datasets table differs from the task files; paste the output of "
              "'python -m benchmark.dev.datasets_table' between its markers", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
