"""Home: what FedMosaic does, scenario templates, the design in progress, active runs, recent results."""

from __future__ import annotations

import streamlit as st

from engine.design import document, scenarios
from engine.reporting import results
from pages.common import ui

ui.enter_page()
st.title("FedMosaic")
st.markdown(
    "Train one model across many sites **without pooling their data**: each client keeps its data, its "
    "own model and its own hardware.  \nPick a scenario, adjust the clients, data and strategy, launch, "
    "and compare how well the federation learns."
)
ui.flash()


def use_template(template_id: str) -> None:
    ui.set_design(document.normalize(scenarios.template(template_id)), replace=True)
    ui.flash_later(f"Loaded the '{template_id}' template: check the data split, then the clients.", "success")


st.subheader("Start from a scenario")
templates = scenarios.templates()
per_row = 3
for start in range(0, len(templates), per_row):
    cols = st.columns(per_row)
    for col, t in zip(cols, templates[start : start + per_row], strict=False):
        with col.container(border=True, height="stretch"):
            st.markdown(f"#### {t.icon} {t.title}")
            st.caption(t.summary)
            cfg = t.config
            n = sum(int(c.get("count", 1)) for c in cfg.get("clients", []))
            archs = sorted(
                {
                    (c.get("model") or {}).get("arch", "?")
                    if isinstance(c.get("model"), dict)
                    else str(c.get("model"))
                    for c in cfg.get("clients", [])
                }
            )
            strategy = cfg.get("strategy")
            strategy_name = strategy.get("name", "fedavg") if isinstance(strategy, dict) else strategy
            st.markdown(
                f"`{cfg.get('data', {}).get('dataset', '?')}` · {n} clients · {', '.join(archs)} · "
                f"`{strategy_name}`"
            )
            if st.button("Use this template", key=f"tmpl-{t.id}", type="primary", width="stretch"):
                with ui.guard("loading the template"):
                    use_template(t.id)
                    ui.goto("data")

design = ui.design()
left, right = st.columns([3, 2])
with left:
    st.subheader("Continue designing")
    n = sum(int(c.get("count", 1) or 1) for c in design.get("clients") or [])
    st.markdown(
        f"**{ui.plain(design.get('name'))}** — dataset `{design.get('data', {}).get('dataset')}`, {n} "
        f"clients, strategy `{design.get('strategy', {}).get('name')}`, {design.get('rounds')} rounds."
    )
    c1, c2, c3 = st.columns(3)
    if c1.button("Data", key="home.data", icon=":material/dataset:", width="stretch"):
        ui.goto("data")
    if c2.button("Clients", key="home.clients", icon=":material/groups:", width="stretch"):
        ui.goto("clients")
    if c3.button("Launch", key="home.launch", icon=":material/rocket_launch:", width="stretch"):
        ui.goto("launch")
    with st.expander("Drafts and config files: save, open, export, import", icon=":material/folder_open:"):
        ui.drafts_panel("home", columns=True)

with right:
    st.subheader("Active runs")
    with ui.guard("reading the runs"):
        mgr = ui.manager()

        def active_ids() -> list[str]:
            """This server's queued and running runs, then those other processes run (the CLI)."""
            own = mgr.active()
            return own + [r["id"] for r in mgr.store.list_runs(status="running") if r["id"] not in own]

        active = active_ids()

        @st.fragment(run_every=2 if active else None)
        def active_panel() -> None:
            ids = active_ids()
            if not ids:
                st.caption("No run is active. Launch one from the Launch page.")
                if active:
                    st.rerun()
                return
            for rid in ids[:8]:
                p = mgr.progress(rid)
                run = mgr.store.get_run(rid)
                text = (
                    f"{ui.status_label(p.get('status', ''))} **{run.get('name')}** — round "
                    f"{p.get('current_round', 0)}/{p.get('rounds', 0)}"
                )
                st.progress(float(p.get("fraction") or 0.0), text=text)
            if len(ids) > 8:
                st.caption(f"... and {len(ids) - 8} more on the Runs page")

        active_panel()

st.subheader("Recent results")
with ui.guard("reading the runs"):
    recent = [r for r in ui.store().list_runs(status="finished", limit=6)]
    if not recent:
        st.caption("No finished runs yet.")
    else:
        cols = st.columns(3)
        for i, r in enumerate(recent):
            k, v = results.headline(r.get("summary") if isinstance(r.get("summary"), dict) else None)
            with cols[i % 3].container(border=True):
                st.markdown(
                    f"**{ui.plain(r.get('name'))}**  \n`{r.get('strategy')}` on `{r.get('dataset')}` · "
                    f"{r.get('n_clients')} clients"
                )
                st.caption(ui.fmt_metric(k, v))
                if st.button("Open results", key=f"recent-{r['id']}", width="stretch"):
                    ui.open_run(r["id"])
