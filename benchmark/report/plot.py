"""`clipbench plot`: PNG figures from result files. A bar chart per task (a bar per model group; error bars: the
std over the group's checkpoints, or the bootstrap 95% interval of a single result) and a models × tasks heat map
with the values written in. Matplotlib's Agg canvas: no display needed, fixed pixel sizes."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import ClipbenchError
from ..outputs import check_folder, write_atomic_with
from ..result_names import slug
from ..results import Result
from .columns import cell, choose_columns
from .comparable import collect
from .reference import Column

DPI = 100


def bar_chart_size(n_groups: int) -> tuple[int, int]:
    """Pixel size (width, height) of a bar chart with `n_groups` bars."""
    return max(640, 200 + 110 * n_groups), 480


def heatmap_size(n_rows: int, n_columns: int) -> tuple[int, int]:
    """Pixel size (width, height) of the heat map of `n_rows` groups × `n_columns` tasks."""
    return max(640, 300 + 80 * n_columns), max(360, 200 + 50 * n_rows)


def _figure(size: tuple[int, int]):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(size[0] / DPI, size[1] / DPI), dpi=DPI)
    FigureCanvasAgg(figure)
    return figure


def _label(column: Column) -> str:
    """A column's name on the heat map: the task (task/lang), or the suite's average in a language."""
    return f"{column.suite} average/{column.language}" if column.suite else column.group or column.label


def _save(figure, path: Path) -> Path:
    return write_atomic_with(path, lambda out: figure.savefig(out, dpi=DPI, format="png"), "--output")


def bar_chart(groups: list[str], cells: list, title: str, ylabel: str, path: Path) -> Path:
    figure = _figure(bar_chart_size(len(groups)))
    axes = figure.add_subplot()
    x = np.arange(len(groups))
    heights = np.array([100 * c.mean if c else 0.0 for c in cells])
    low, high, kinds = np.zeros(len(cells)), np.zeros(len(cells)), set()
    for i, c in enumerate(cells):
        if c is not None and c.std is not None:
            low[i] = high[i] = 100 * c.std
            kinds.add(f"std over checkpoints (n={c.n})")
        elif c is not None and c.ci95:
            low[i], high[i] = 100 * (c.mean - c.ci95[0]), 100 * (c.ci95[1] - c.mean)
            kinds.add("bootstrap 95% interval")
    colours = [f"C{i % 10}" for i in range(len(groups))]
    bars = axes.bar(x, heights, yerr=np.vstack([low, high]), capsize=5, color=colours, edgecolor="black", linewidth=0.5)
    for i, (bar, c) in enumerate(zip(bars, cells)):  # value above the error bar
        axes.text(bar.get_x() + bar.get_width() / 2, heights[i] + high[i] + 1.5, f"{heights[i]:.1f}" if c else "n/a",
                  ha="center", va="bottom", fontsize=9)
    axes.set_xticks(x, labels=groups, rotation=20 if len(groups) > 3 else 0, ha="right" if len(groups) > 3 else "center")
    axes.set_ylim(0, 105)
    axes.set_ylabel(ylabel)
    axes.set_xlabel("model")
    axes.set_title(title)
    axes.grid(axis="y", alpha=0.3)
    axes.set_axisbelow(True)
    if kinds:
        figure.text(0.99, 0.01, "error bars: " + "; ".join(sorted(kinds)), ha="right", va="bottom", fontsize=8, color="0.3")
    figure.tight_layout(rect=(0, 0.03, 1, 1))
    return _save(figure, path)


def heatmap(groups: list[str], labels: list[str], values: np.ndarray, title: str, colourbar: str, path: Path) -> Path:
    import matplotlib

    figure = _figure(heatmap_size(len(groups), len(labels)))
    axes = figure.add_subplot()
    cmap = matplotlib.colormaps["viridis"].with_extremes(bad="0.85")
    image = axes.imshow(np.ma.masked_invalid(values), cmap=cmap, vmin=0, vmax=100, aspect="auto")
    for r in range(len(groups)):
        for c in range(len(labels)):
            v = values[r, c]
            axes.text(c, r, "–" if np.isnan(v) else f"{v:.1f}", ha="center", va="center", fontsize=9,
                      color="black" if np.isnan(v) or v > 60 else "white")
    axes.set_xticks(range(len(labels)), labels=labels, rotation=45, ha="right")
    axes.set_yticks(range(len(groups)), labels=groups)
    axes.set_xlabel("task")
    axes.set_ylabel("model")
    axes.set_title(title)
    figure.colorbar(image, ax=axes, label=colourbar, fraction=0.04)
    figure.tight_layout()
    return _save(figure, path)


def plot(results: list[Result], output: Path, metric: str = "main", force: bool = False) -> list[Path]:
    """Write bar_<task>_<lang>.png per task and heatmap.png under `output`; return the paths."""
    if not results:
        raise ClipbenchError("no result files given; run 'clipbench run' first", exit_code=2)
    grouped = collect(results, force)
    columns = choose_columns(grouped, "main" if metric == "main" else [metric])
    groups = sorted({key.group for key in grouped})
    output = Path(output)
    check_folder(output, "--output")
    paths, matrix = [], np.full((len(groups), len(columns)), np.nan)
    for c, column in enumerate(columns):
        cells = [cell(grouped, g, column) for g in groups]
        for r, found in enumerate(cells):
            if found is not None:
                matrix[r, c] = 100 * found.mean
        if column.task is not None:
            shown = column.metric if metric != "main" else f"{column.metric} (main score)"
            paths.append(bar_chart(groups, cells, f"{column.task} [{column.language}]: {shown}", f"{column.metric} (%)",
                                   output / f"bar_{slug(column.task)}_{column.language}.png"))
    what = "main score" if metric == "main" else metric
    paths.append(heatmap(groups, [_label(c) for c in columns], matrix, f"Zero-shot {what} per task (%)", f"{what} (%)",
                         output / "heatmap.png"))
    return paths
