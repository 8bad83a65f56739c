"""Results as tables.

`run_table`: the table printed after `clipbench run` (a row per model, task and language).
`build_table` (rendered by benchmark.render): paper-style tables. Rows are model groups (several checkpoints of one group show
as mean ± std), columns are tasks (or task × metric), suites get an "Average" column (the columns and cells come
from benchmark.columns, as the plots' do), the best value of a column is bold, missing cells show "–". Published rows (`reference=`) and paper layouts (`layout=`) come from
benchmark.reference.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import ClipbenchError
from ..interop import MARK
from ..kinds import METRICS_BY_KIND
from ..results import Result
from .columns import Stat, cell as cell_of, choose_columns
from .comparable import collect
from .reference import Reference, RefModel, layout as get_layout, load as load_reference

DASH = "–"
FORMATS = ("markdown", "latex", "csv", "html")


def percent(value: float | None) -> str:
    return "-" if value is None or pd.isna(value) else f"{100 * value:.2f}"


def _interval(result: Result) -> str:
    """The bootstrap 95% interval of the main score, in percent, or '-' without --bootstrap."""
    ci = result.interval(result.main_score)
    return f"[{100 * ci[0]:.2f}, {100 * ci[1]:.2f}]" if ci else "-"


def run_table(results: list[Result], fmt: str = "github") -> str:
    """The table printed after `clipbench run`: a row per (model, task, language), a column per metric."""
    blocks = []
    for kind, names in METRICS_BY_KIND.items():
        rows = [r for r in results if r.kind == kind]
        if not rows:
            continue
        shown = [n for n in names if any(n in r.metrics for r in rows)]
        frame = pd.DataFrame(
            [
                {
                    "model": r.model.name,
                    "task": r.task,
                    "lang": r.language,
                    **{n: percent(r.metrics.get(n)) for n in shown},
                    **({"main 95% CI": _interval(r)} if any(r.bootstrap for r in rows) else {}),
                    "images": r.dataset.n_images,
                    "img/s": f"{r.run.images_per_second:.0f}" if r.run.images_per_second else "cached",
                }
                for r in rows
            ]
        )
        blocks.append(frame.to_markdown(index=False, tablefmt=fmt, disable_numparse=True))
    return "\n\n".join(blocks)


# ------------------------------------------------------------------------------------------------ tables

@dataclass
class Row:
    label: str
    group: str | None = None  # a run group
    published: RefModel | None = None  # a published row (or the published counterpart of a run row)
    is_published: bool = False


@dataclass
class Table:
    """`frame`: the cell text (no markup), rows × (group, label) columns; `best`: the bold cells; `mean`/`std`:
    the numbers behind the cells as fractions (Δ columns hold ours − published)."""

    frame: pd.DataFrame
    best: pd.DataFrame
    mean: pd.DataFrame
    std: pd.DataFrame
    title: str = ""
    decimals: int = 2
    notes: tuple[str, ...] = ()  # lines under the table (markdown, latex, html), e.g. what a † means


def _rows(groups: list[str], labels_from: Reference | None, reference: Reference | None) -> list[Row]:
    rows, placed = [], set()
    models = labels_from.models if labels_from else ()
    for model in models:
        for group in sorted(g for g in groups if model.matches(g) and g not in placed):
            rows.append(Row(model.label, group, model))
            placed.add(group)
        if reference is not None:
            rows.append(Row(f"{model.label} (published)", None, model, True))
    rows += [Row(g, g) for g in sorted(groups) if g not in placed]
    labels = [r.label for r in rows]
    for row in rows:
        if labels.count(row.label) > 1 and row.group:
            row.label = f"{row.label} [{row.group}]"
    return rows


def imported_note(results: list[Result]) -> str | None:
    """The line under a table with imported rows (benchmark.interop), or None when there are none."""
    imported = [r for r in results if r.imported is not None]
    if not imported:
        return None
    sources = sorted({r.imported.source for r in imported})
    return (f"{MARK.strip()}: {len(imported)} result(s) read from {' and '.join(sources)} result files, each "
            "group's own row; those files record no dataset fingerprint, prompts, split, precision or protocol, so "
            "these numbers may not be measured as the other rows' are (CLIP_benchmark runs with AMP by default).")


def _cell_text(cell: Stat | None, decimals: int) -> str:
    if cell is None:
        return DASH
    text = f"{100 * cell.mean:.{decimals}f}"
    return f"{text} ± {100 * cell.std:.{decimals}f}" if cell.std is not None else text


def build_table(results: list[Result], metrics="main", layout: str | None = None, reference: str | Reference | None = None,
                force: bool = False, decimals: int | None = None, mark=None, notes: tuple[str, ...] = ()) -> Table:
    """Rows = model groups (and published rows), columns = tasks (task/lang when a task has several languages),
    or task × metric when `metrics` is a list; see the module docstring. `mark(group, column)`: a suffix for the
    cell of a run group (benchmark.report.significance: "†" or ""); `notes`: lines shown under the table."""
    if layout and metrics != "main":
        raise ClipbenchError("a --layout fixes its own columns; drop --metric", exit_code=2)
    chosen = get_layout(layout) if layout else None
    if chosen is not None and not force:
        other = [r for r in results if r.protocol_name != chosen.protocol]
        if other:
            r = other[0]
            raise ClipbenchError(
                f"layout '{chosen.name}' is the paper's table, measured under protocol '{chosen.protocol}', but "
                f"{len(other)} of the results were evaluated under another (e.g. {r.key.group} on {r.task} "
                f"[{r.language}]: '{r.protocol_name}'); re-run them with --protocol {chosen.protocol}, "
                "or pass --force to show them anyway", exit_code=2)
    grouped = collect(results, force)
    ref = load_reference(reference) if isinstance(reference, str) else reference
    labels_from = ref
    if chosen is not None and labels_from is None:
        try:
            labels_from = load_reference(chosen.reference)
        except ClipbenchError:
            labels_from = None  # labels are a nicety; the layout still works without its reference file
    published = list(ref.values) if ref else []
    columns = [c.resolved() for c in chosen.columns] if chosen else choose_columns(grouped, metrics, published)
    decimals = decimals if decimals is not None else (chosen.decimals if chosen else 2)

    cells: dict[tuple[int, tuple], Stat] = {}
    rows = _rows(sorted({key.group for key in grouped}), labels_from, ref)
    for i, row in enumerate(rows):
        for col in columns:
            if row.is_published:
                hit = next((p for p in published if p.model == row.published and p.column == col.key), None)
                cell = hit and Stat(hit.value, hit.std if row.published.runs > 1 else None, row.published.runs)
            else:
                cell = cell_of(grouped, row.group, col)
            if cell is not None:
                cells[(i, col.key)] = cell
    keep = [i for i in range(len(rows)) if any((i, c.key) in cells for c in columns)]
    if not keep:
        what = f"layout '{layout}'" if layout else "the chosen columns"
        raise ClipbenchError(f"none of the results (or published rows) has a value for {what}", exit_code=2)

    header, text, best, mean, std = [], defaultdict(list), defaultdict(list), defaultdict(list), defaultdict(list)
    published_row = {}  # run row -> the published row it reproduces
    for i in keep:
        if ref is not None and not rows[i].is_published and rows[i].published is not None:
            j = next((j for j in keep if rows[j].is_published and rows[j].published == rows[i].published), None)
            if j is not None:
                published_row[i] = j
    for col in columns:
        shown = {i: round(100 * cells[(i, col.key)].mean, decimals) for i in keep if (i, col.key) in cells}
        top = max(shown.values()) if len(shown) > 1 else None
        header.append((col.group, col.label))
        for i in keep:
            cell = cells.get((i, col.key))
            suffix = mark(rows[i].group, col) if mark is not None and cell is not None and not rows[i].is_published else ""
            text[i].append(_cell_text(cell, decimals) + suffix)
            best[i].append(top is not None and shown.get(i) == top)
            mean[i].append(np.nan if cell is None else cell.mean)
            std[i].append(np.nan if cell is None or cell.std is None else cell.std)
        pairs = {i: (cells.get((i, col.key)), cells.get((j, col.key))) for i, j in published_row.items()}
        if any(a is not None and b is not None for a, b in pairs.values()):
            header.append((col.group, f"Δ {col.label}"))
            for i in keep:
                ours, theirs = pairs.get(i, (None, None))
                delta = ours.mean - theirs.mean if ours is not None and theirs is not None else None
                text[i].append("" if i not in pairs else DASH if delta is None else f"{100 * delta:+.{decimals}f}")
                best[i].append(False)
                mean[i].append(np.nan if delta is None else delta)
                std[i].append(np.nan)
    index = pd.Index([rows[i].label for i in keep], name="Model")
    columns_index = pd.MultiIndex.from_tuples(header, names=["", ""])

    def frame(data):
        return pd.DataFrame([data[i] for i in keep], index=index, columns=columns_index)

    note = imported_note(results)
    return Table(frame(text), frame(best).astype(bool), frame(mean).astype(float), frame(std).astype(float),
                 chosen.title if chosen else "", decimals, tuple(notes) + ((note,) if note else ()))
