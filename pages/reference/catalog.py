"""Catalog: every strategy, architecture, dataset, partitioner, executor and device tier, with its
description, paper and parameters, generated from the registries (nothing here is hand-listed)."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from engine.catalog import catalog
from pages.common import ui

ui.enter_page()
st.title("Catalog")
st.caption(
    "Everything FedMosaic can combine. Generated from the engine's registries, so it is always complete."
)


@st.cache_resource(show_spinner=False)
def registries() -> dict[str, list[dict[str, Any]]]:
    """The catalog, built once per server process and shared read-only (``cache_data`` handed every
    rerun a deep copy of all of it)."""
    return catalog()


def params_table(params: list[dict[str, Any]]) -> None:
    if not params:
        st.caption("No parameters.")
        return
    rows = []
    for p in params:
        bounds = []
        for k, sym in (
            ("minimum", "≥"),
            ("exclusiveMinimum", ">"),
            ("maximum", "≤"),
            ("exclusiveMaximum", "<"),
        ):
            if k in p:
                bounds.append(f"{sym} {p[k]}")
        rows.append(
            {
                "parameter": p["name"],
                "type": str(p.get("type", "")),
                "default": str(p.get("default")),
                "range": ", ".join(bounds) or (" | ".join(map(str, p["enum"])) if p.get("enum") else ""),
                "description": p.get("description", ""),
            }
        )
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")


cat = registries()
query = (
    st.text_input("Search", placeholder="e.g. prototype, image, dirichlet", key="cat.search").strip().lower()
)


def matches(entry: dict[str, Any]) -> bool:
    return not query or query in " ".join(str(v) for v in entry.values()).lower()


labels = {
    "strategies": "Strategies",
    "architectures": "Architectures",
    "datasets": "Datasets",
    "partitioners": "Partitioners",
    "tiers": "Device tiers",
    "executors": "Executors",
}
sections = [s for s in labels if s in cat] + [s for s in cat if s not in labels]
# Lazy: only the open tab, and only an open entry's details, are built and sent (62 parameter tables
# in every rerun made this the slowest page to open while runs trained: docs/benchmarks.md).
tabs = st.tabs(
    [f"{labels.get(s, s.title())} ({sum(map(matches, cat[s]))})" for s in sections],
    key="cat.tab",
    on_change="rerun",
)
for tab, section in zip(tabs, sections, strict=True):
    if not tab.open:
        continue
    with tab:
        entries = [e for e in cat[section] if matches(e)]
        if not entries:
            st.caption("Nothing matches the search." if query else "None in this build.")
        if section == "strategies":
            st.dataframe(
                pd.DataFrame(
                    [
                        {
                            "strategy": e["name"],
                            "family": e.get("family"),
                            "mixed models": "✓" if e.get("mixed_architectures") else "",
                            "needs public set": "✓" if e.get("needs_public") else "",
                            "tasks": ", ".join(e.get("tasks", [])),
                            "exports to Flower as": e.get("flower") or "",
                            "paper": e.get("url") or None,
                        }
                        for e in entries
                    ]
                ),
                hide_index=True,
                width="stretch",
                height=38 + 35 * len(entries),
                column_config={"paper": st.column_config.LinkColumn("paper", display_text="open paper")},
            )
        for e in entries:
            title = e.get("name") or e.get("id") or "?"
            entry = st.expander(
                f"**{title}** — {e.get('description', '')}", key=f"cat.{section}.{title}", on_change="rerun"
            )
            if not entry.open:
                continue
            with entry:
                if e.get("paper") or e.get("url"):
                    link = f"[{e.get('paper') or e['url']}]({e['url']})" if e.get("url") else e["paper"]
                    st.markdown(f":material/article: {link}")
                facts = {
                    k: v
                    for k, v in e.items()
                    if k not in ("name", "description", "paper", "url", "params")
                    and v not in (None, "", [], {})
                }
                if facts:
                    st.markdown(
                        "  \n".join(
                            f"**{k.replace('_', ' ')}**: "
                            f"{', '.join(map(str, v)) if isinstance(v, list) else v}"
                            for k, v in facts.items()
                            if not isinstance(v, dict)
                        )
                        or " "
                    )
                    for k, v in facts.items():
                        if isinstance(v, dict):
                            st.markdown(f"**{k.replace('_', ' ')}**")
                            st.table(
                                pd.DataFrame({"": list(v.keys()), "value": [str(x) for x in v.values()]})
                            )
                if "params" in e:
                    params_table(e["params"])
