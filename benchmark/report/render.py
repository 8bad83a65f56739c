"""Rendering a built `Table` as Markdown (bold as **x**), LaTeX (booktabs), CSV or HTML."""

from __future__ import annotations

import html

import pandas as pd

from ..errors import ClipbenchError
from .table import FORMATS, Table


def _flat(header: tuple[str, str]) -> str:
    return f"{header[0]} {header[1]}".strip()


def _latex_escape(text: str) -> str:
    out = "".join("\\" + ch if ch in "&%$#_{}" else {"\\": r"\textbackslash{}", "~": r"\textasciitilde{}",
                                                     "^": r"\textasciicircum{}"}.get(ch, ch) for ch in text)
    return out.replace("±", r"$\pm$").replace("–", "--").replace("Δ", r"$\Delta$").replace("†", r"$^{\dagger}$")


def _latex(table: Table) -> str:
    frame, headers = table.frame, list(table.frame.columns)
    lines = [r"\begin{tabular}{l" + "r" * len(headers) + "}", r"\toprule"]
    if any(group for group, _ in headers):
        spans, rules, start = [], [], 0
        while start < len(headers):
            end = start
            while end + 1 < len(headers) and headers[end + 1][0] == headers[start][0]:
                end += 1
            group, width = headers[start][0], end - start + 1
            spans += [rf"\multicolumn{{{width}}}{{c}}{{{_latex_escape(group)}}}"] if group else [""] * width
            if group:
                rules.append(rf"\cmidrule(lr){{{start + 2}-{end + 2}}}")
            start = end + 1
        lines.append(" & ".join([""] + spans) + r" \\")
        lines.append(" ".join(rules))
    lines.append(" & ".join([_latex_escape(frame.index.name or "")] + [_latex_escape(label) for _, label in headers]) + r" \\")
    lines.append(r"\midrule")
    for r, (label, values) in enumerate(frame.iterrows()):
        cells = [rf"\textbf{{{_latex_escape(v)}}}" if table.best.iat[r, c] else _latex_escape(v) for c, v in enumerate(values)]
        lines.append(" & ".join([_latex_escape(str(label))] + cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines)


def render(table: Table, fmt: str = "markdown") -> str:
    """markdown (GitHub pipes, bold as **x**), latex (booktabs, \\textbf), csv (plain text cells), html (<b>).
    The table's notes follow it in markdown, latex (a \\footnotesize line) and html; csv stays cells only."""
    fmt = fmt.lower()
    if fmt not in FORMATS:
        raise ClipbenchError(f"unknown table format '{fmt}'; use one of {', '.join(FORMATS)}", exit_code=2)
    text = _render(table, fmt)
    if not table.notes or fmt == "csv":
        return text
    if fmt == "latex":
        return text + "".join(f"\n{{\\footnotesize {_latex_escape(note).replace('<', '$<$')}\\par}}" for note in table.notes)
    if fmt == "html":
        return text + "".join(f"\n<p>{html.escape(note)}</p>" for note in table.notes)
    return text + "\n\n" + "\n".join(table.notes)


def _render(table: Table, fmt: str) -> str:
    frame, two_level = table.frame, any(group for group, _ in table.frame.columns)
    if fmt == "latex":
        return _latex(table)
    if fmt == "csv":
        flat = frame.copy()
        flat.columns = [_flat(h) for h in frame.columns]
        return flat.to_csv(index_label=frame.index.name or "model").rstrip("\n")
    if fmt == "markdown":
        marked = frame.where(~table.best, "**" + frame + "**")
        marked.columns = [_flat(h) for h in frame.columns]
        return marked.to_markdown(tablefmt="github", disable_numparse=True)
    marked = frame.apply(lambda column: column.map(html.escape))
    marked = marked.where(~table.best, "<b>" + marked + "</b>")
    marked.index = [html.escape(str(i)) for i in frame.index]
    marked.index.name = frame.index.name
    if two_level:
        marked.columns = pd.MultiIndex.from_tuples([(html.escape(g), html.escape(l)) for g, l in frame.columns])
    else:
        marked.columns = [html.escape(l) for _, l in frame.columns]
    return marked.to_html(escape=False, border=0, index_names=False)
