"""The HTML report's building blocks (:mod:`engine.reporting.report`): its style sheet, escaped
text and numbers, tables with tooltips naming each metric, JSON readable by scripts, and Plotly
figures with plotly.js inlined once."""

from __future__ import annotations

import html
import json
import math
from collections.abc import Sequence
from typing import Any

import pandas as pd
import plotly.graph_objects as go

from engine.reporting import charts

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1200px;
color:#1d1d1f;padding:0 1rem;line-height:1.45}
h1{margin-bottom:.2rem}h2{margin-top:2.4rem;border-bottom:1px solid #ddd;padding-bottom:.3rem}
.meta{color:#666;font-size:.9rem}
table{border-collapse:collapse;margin:.6rem 0;font-size:.88rem;display:block;overflow-x:auto}
th,td{border:1px solid #ddd;padding:.3rem .55rem;text-align:left;white-space:nowrap}
th{background:#f5f5f7}td.num{text-align:right;font-variant-numeric:tabular-nums}
pre{background:#f6f8fa;padding:.8rem;overflow:auto;font-size:.8rem;max-height:28rem}
details{margin:.6rem 0}summary{cursor:pointer;font-weight:600}
.status-finished{color:#1a7f37}.status-failed{color:#cf222e}.status-cancelled,.status-interrupted{color:#9a6700}
.chart{margin:1rem 0}.note{color:#666;font-style:italic}
.verdict{padding:.5rem .8rem;border-radius:6px;background:#eef5fb}.verdict-better{background:#e7f4ea}
.verdict-worse{background:#fdf0e6}
"""


def esc(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def number_text(value: Any) -> str:
    if isinstance(value, float):
        if not math.isfinite(value):
            return ""
        return f"{value:,.0f}" if abs(value) >= 1e4 else f"{value:.4g}"
    return esc(value)


def html_table(
    df: pd.DataFrame, columns: Sequence[str] | None = None, labels: dict[str, str] | None = None
) -> str:
    if df.empty:
        return '<p class="note">Nothing recorded.</p>'
    columns = [c for c in (columns or df.columns) if c in df.columns]
    labels = labels or {}
    head = "".join(f'<th title="{esc(charts.metric_label(c))}">{esc(labels.get(c, c))}</th>' for c in columns)
    rows = []
    for record in df[columns].to_dict("records"):
        cells = []
        for c in columns:
            v = record[c]
            numeric = isinstance(v, (int, float)) and not isinstance(v, bool)
            css = ' class="num"' if numeric else (f' class="status-{esc(v)}"' if c == "status" else "")
            cells.append(f"<td{css}>{number_text(v) if numeric else esc(v)}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def json_script(element_id: str, value: Any) -> str:
    """JSON readable by machines (``<script type="application/json">``), safe inside HTML."""
    text = json.dumps(value, indent=2, sort_keys=False, default=str).replace("</", "<\\/")
    return f'<script type="application/json" id="{esc(element_id)}">{text}</script>'


class Figures:
    """Figure HTML fragments; plotly.js is inlined once, with the first figure."""

    def __init__(self) -> None:
        self.count = 0

    def html(self, fig: go.Figure) -> str:
        fragment = fig.to_html(
            full_html=False,
            include_plotlyjs=self.count == 0,
            config={"displaylogo": False, "responsive": True},
            div_id=f"chart-{self.count}",
        )
        self.count += 1
        return f'<div class="chart">{fragment}</div>'
