"""Results as tables: metrics in percent, one table per task kind."""

from __future__ import annotations

import pandas as pd

from .specs import METRICS_BY_KIND


def percent(value: float | None) -> str:
    return "-" if value is None or pd.isna(value) else f"{100 * value:.2f}"


def run_table(results: list[dict], fmt: str = "github") -> str:
    """The table printed after `clipbench run`: a row per (model, task, language), a column per metric."""
    blocks = []
    for kind, names in METRICS_BY_KIND.items():
        rows = [r for r in results if r["kind"] == kind]
        if not rows:
            continue
        shown = [n for n in names if any(n in r["metrics"] for r in rows)]
        frame = pd.DataFrame(
            [
                {
                    "model": r["model"]["name"],
                    "task": r["task"],
                    "lang": r["language"],
                    **{n: percent(r["metrics"].get(n)) for n in shown},
                    "images": r["dataset"]["n_images"],
                    "img/s": f"{r['run']['images_per_second']:.0f}" if r["run"].get("images_per_second") else "cached",
                }
                for r in rows
            ]
        )
        blocks.append(frame.to_markdown(index=False, tablefmt=fmt, disable_numparse=True))
    return "\n\n".join(blocks)
