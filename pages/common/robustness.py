"""The robustness parts of the pages: the Launch page's defence picker and the attack panel of
Results and Compare. Called from those pages; everything they show comes from :mod:`engine.design`
and :mod:`engine.robustness.report`."""

from __future__ import annotations

from typing import Any

import streamlit as st

from engine.design import adversaries, forms
from engine.labels import for_page
from engine.reporting import charts, results
from engine.robustness.report import attack_chart
from pages.common import ui

COMPARE_BY_DEFAULT = ("none", "median", "trimmed_mean", "norm_clip")
"""Defences a roster with compromised clients compares unless the design says otherwise."""


def defence_picker(design: dict[str, Any], strategies: list[str]) -> list[dict[str, Any]]:
    """The Launch page's *Defence* section: pick one or more defences (several make a sweep the
    attack chart compares); returns ``[{"name": ..., **settings}]`` in the order shown."""
    st.subheader("Defence against compromised clients")
    entries = adversaries.defences(design, strategies)
    usable = [e for e in entries if e["reason"] is None]
    titles = {e["name"]: e["title"] for e in entries}
    compromised = adversaries.has_adversaries(design)
    st.caption(
        "How the server combines what the clients send. A robust rule resists clients that poison their "
        "data or their messages (Clients page, *attack* column); pick several to compare them side by side"
        + (" — the roster has compromised clients." if compromised else ".")
    )
    current = (
        str((design.get("defence") or {}).get("name", "none"))
        if isinstance(design.get("defence"), dict)
        else str(design.get("defence") or "none")
    )
    chosen_key = ui.key("launch.defences")
    if chosen_key not in st.session_state:
        start = [current]
        if compromised and current == "none":
            start = [n for n in COMPARE_BY_DEFAULT if any(e["name"] == n for e in usable)]
        st.session_state[chosen_key] = start
    valid = [n for n in st.session_state[chosen_key] if any(e["name"] == n for e in usable)]
    if valid != st.session_state[chosen_key]:
        st.session_state[chosen_key] = valid
    picked = st.multiselect(
        "Defences",
        [e["name"] for e in usable],
        key=chosen_key,
        format_func=lambda n: titles.get(n, n),
        help="\n\n".join(f"**{e['title']}**: {e['description']}" for e in entries),
    )
    blocked = [e for e in entries if e["reason"] is not None]
    if blocked:
        st.caption(
            "Cannot apply here: "
            + "; ".join(f"**{e['title']}** — {for_page(e['reason'])}" for e in blocked[:3])
            + (f"; and {len(blocked) - 3} more for the same reason" if len(blocked) > 3 else "")
        )
    out: list[dict[str, Any]] = []
    values = design.get("defence") if isinstance(design.get("defence"), dict) else {}
    for name in picked or ["none"]:
        fields = forms.defence_fields(name)
        settings: dict[str, Any] = {}
        if fields:
            entry = next(e for e in entries if e["name"] == name)
            with st.expander(f"**{entry['title']}** — {entry['description']}", expanded=len(picked) <= 2):
                if entry.get("url"):
                    st.markdown(f":material/article: [{entry['paper']}]({entry['url']})")
                settings = ui.params_form(
                    fields, values if values.get("name") == name else {}, f"launch.d.{name}"
                )
        out.append({"name": name, **settings})
    return out


PLOTLY_CONFIG = {
    "displaylogo": False,
    "toImageButtonOptions": {"format": "png", "scale": 2, "filename": "attack"},
}


def attack_section(store: Any, run_ids: list[str], metric: Any, key: str = "cmp.attack") -> None:
    """Compare's *Attacks and defences*: the attack chart and its table, when the runs have
    compromised clients and differ in defence (or include the same federation unattacked)."""
    view = results.attack_view(store, run_ids)
    if view is None:
        return
    table, chart_metric = view
    st.subheader("Attacks and defences")
    st.caption(
        f"Per defence: **{chart_metric}** on each client's own test data (the headline, higher is better) "
        "and, for a backdoor, the **attack success rate**: the share of the global test set's samples of "
        "other classes that the honest clients' models put in the attacker's class once the trigger is "
        "added (lower is better). Bars: mean over seeds; whiskers: ±1 standard deviation. *No attack*: the "
        "same federation without compromised clients, the level a defence should keep."
    )
    st.plotly_chart(attack_chart(table, chart_metric), key=key, config=PLOTLY_CONFIG)
    shown = table.rename(
        columns={
            "primary_mean": f"{chart_metric} (mean)",
            "primary_std": "std",
            "asr_mean": "attack success (mean)",
            "asr_std": "std ",
            "seeds": "seeds",
        }
    )
    st.dataframe(
        shown,
        hide_index=True,
        width="stretch",
        column_config={
            c: st.column_config.NumberColumn(c, format="%.3f")
            for c in shown.columns
            if shown[c].dtype.kind == "f"
        },
    )


def run_panel(run: dict[str, Any], rounds: Any, plot: Any) -> None:
    """Results' note on a run with compromised clients: who attacks how, the defence, the attack
    success rate over rounds and what the defence did to the attackers."""
    info = results.run_attack(run, rounds)
    if info is None:
        return
    with st.container(border=True):
        st.markdown(
            f":material/shield: **Compromised clients**: {info['attack']} · **defence**: {info['defence']}"
        )
        cols = st.columns(3)
        if info["asr"] is not None:
            cols[0].metric(
                "Attack success rate (final)",
                f"{info['asr']:.3f}",
                help="Share of the global test set's samples of other classes that the honest clients' "
                "models put in the attacker's class once the trigger is added (lower is better)",
            )
        if info["kept_attackers"] is not None:
            cols[1].metric(
                "Attackers' share in the combination",
                f"{info['kept_attackers']:.0%}",
                help="Krum, multi-Krum: how often the compromised clients' contributions were used; honest "
                f"clients: {info['kept_honest']:.0%}",
            )
        if info["scale_attackers"] is not None:
            cols[2].metric(
                "Attackers' updates scaled to",
                f"{info['scale_attackers']:.0%}",
                help=f"Norm clipping: the mean factor their updates were shortened by; honest clients: "
                f"{info['scale_honest']:.0%}",
            )
        if info["asr"] is not None:
            plot(
                charts.curves(rounds, "backdoor_asr", runs=[run], title="Attack success rate over rounds"),
                "asr",
            )
        st.caption(
            "To compare defences, open this design on the Launch page and pick several under *Defence "
            "against compromised clients*; Compare then shows them side by side."
        )
