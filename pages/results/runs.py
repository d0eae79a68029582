"""Runs: every run with its status and live progress; filter and search; cancel, resume, fork,
rename, tag, delete; open one in Results or several in Compare."""

from __future__ import annotations

import streamlit as st

from engine.reporting import results
from engine.tracking.schema import ACTIVE, STATUSES
from pages.common import ui

ui.enter_page()
st.title("Runs")
ui.flash()

mgr = ui.manager_or_stop()
store = mgr.store

f1, f2 = st.columns([2, 3])
status_filter = f1.multiselect("Status", list(STATUSES), key="runs.status", placeholder="any status")
if "runs_search" in st.session_state:  # set by Launch: show the sweep just launched
    st.session_state["runs.search"] = st.session_state.pop("runs_search")
search = f2.text_input("Search name, id, strategy, dataset, tag or sweep", key="runs.search")

has_active = (
    bool(mgr.active())
    or bool(store.list_runs(status="running", limit=1))
    or bool(store.list_runs(status="queued", limit=1))
)


def table_key() -> str:
    """The table's widget key: a new one after a deletion, so no row stays ticked (ticks are row
    positions, which would now point at other runs)."""
    version = st.session_state.get("runs_table_version", 0)
    return "runs.table" if not version else f"runs.table.{version}"


@st.fragment(run_every=2 if has_active else None)
def runs_table() -> None:
    """The table (refreshed every 2 s while runs are active) and the actions on the selected rows."""
    frame = results.runs_frame(store, status=status_filter, search=search)
    active_now = bool((frame["status"].isin(ACTIVE)).any()) if len(frame) else False
    if has_active and not active_now and not mgr.active():
        st.rerun(scope="app")  # the last active run ended: stop polling
    if frame.empty:
        total = len(store.list_runs(limit=1))
        st.info(
            "No runs match the filter."
            if total
            else "No runs yet. Start from a template on the Home page, then launch it."
        )
        return
    counts = frame["status"].value_counts()
    st.caption(
        f"{len(frame)} runs · "
        + " · ".join(f"{ui.status_label(s)} {int(counts[s])}" for s in STATUSES if s in counts)
    )
    shown = frame.assign(status=frame["status"].map(ui.status_label))
    event = st.dataframe(
        shown,
        key=table_key(),
        on_select="rerun",
        selection_mode="multi-row",
        hide_index=True,
        width="stretch",
        height=min(38 + 35 * (len(frame) + 1), 598),
        column_order=[
            "status",
            "name",
            "progress",
            "metric",
            "value",
            "strategy",
            "dataset",
            "clients",
            "seed",
            "tags",
            "created",
            "duration_s",
            "error",
            "id",
            "group",
        ],
        column_config={
            "progress": st.column_config.ProgressColumn(
                "progress", min_value=0.0, max_value=1.0, format="percent", help="rounds done / rounds"
            ),
            "name": st.column_config.TextColumn("name", width="large"),
            "metric": st.column_config.TextColumn("metric", help="the run's headline figure"),
            "value": st.column_config.NumberColumn("final", format="%.3f"),
            "created": st.column_config.DatetimeColumn("created", format="YYYY-MM-DD HH:mm"),
            "duration_s": st.column_config.NumberColumn("time s", format="%.0f"),
            "error": st.column_config.TextColumn("error", width="medium"),
        },
    )
    rows = list(event.selection.rows) if event is not None else []
    selected = frame.iloc[rows] if rows else frame.iloc[0:0]
    ids = list(selected["id"])
    if not ids:
        st.caption(
            "Select rows (tick the box at the left of a row) to open, compare, cancel, resume, fork, "
            "rename, tag or delete them."
        )
        return
    st.markdown(
        f"**{len(ids)} selected:** "
        + ", ".join(ui.plain(n) for n in selected["name"].head(5))
        + (" ..." if len(ids) > 5 else "")
    )
    b = st.columns(6)
    if b[0].button("Open results", key="runs.open", disabled=len(ids) != 1, width="stretch"):
        ui.open_run(ids[0])
    if b[1].button("Compare", key="runs.compare", disabled=len(ids) < 2, width="stretch"):
        st.session_state["compare_ids"] = ids
        ui.goto("compare")
    active_ids = [i for i, s in zip(ids, selected["status"], strict=True) if s in ACTIVE]
    resumable = [
        i for i, s in zip(ids, selected["status"], strict=True) if s in ("interrupted", "cancelled", "failed")
    ]
    if b[2].button("Cancel", key="runs.cancel", disabled=not active_ids, width="stretch"):
        with ui.guard("cancelling"):
            for rid in active_ids:
                mgr.cancel(rid)
            st.toast(f"Cancelling {len(active_ids)} run(s)", icon=":material/stop_circle:")
            st.rerun(scope="app")
    if b[3].button("Resume", key="runs.resume", disabled=not resumable, width="stretch"):
        with ui.guard("resuming"):
            for rid in resumable:
                mgr.resume(rid)
            st.toast(f"Resumed {len(resumable)} run(s)", icon=":material/play_arrow:")
            st.rerun(scope="app")
    if b[4].button(
        "Fork",
        key="runs.fork",
        disabled=len(ids) != 1,
        width="stretch",
        help="open this run's config in the designer to change and launch it again",
    ):
        with ui.guard("forking"):
            config = mgr.fork(ids[0])
            design = config.model_dump(mode="json")
            design["name"] = f"{design.get('name', 'experiment')} (fork)"
            ui.set_design(design, replace=True)
            ui.flash_later(f"Forked run {ids[0]}: change what you want, then launch.", "info")
            ui.goto("launch")
    with b[5].popover("Delete", icon=":material/delete:", width="stretch"):
        st.write(f"Delete {len(ids)} run(s) and their checkpoints? This cannot be undone.")
        if st.button("Delete for good", key="runs.delete", type="primary"):
            with ui.guard("deleting"):
                for rid in ids:
                    mgr.delete(rid)
                    if st.session_state.get("results_run") == rid:
                        st.session_state.pop("results_run")
                st.session_state["runs_table_version"] = st.session_state.get("runs_table_version", 0) + 1
                st.toast(f"Deleted {len(ids)} run(s)", icon=":material/delete:")
                st.rerun(scope="app")
    e1, e2 = st.columns(2)
    with e1.container(border=True):
        new_name = st.text_input(
            "Rename", value=str(selected["name"].iloc[0]), key=f"runs.rename.{ids[0]}", disabled=len(ids) != 1
        )
        if st.button("Rename", key="runs.rename_go", disabled=len(ids) != 1 or not new_name.strip()):
            with ui.guard("renaming"):
                mgr.rename(ids[0], new_name.strip())
                st.rerun(scope="fragment")
    with e2.container(border=True):
        current = str(selected["tags"].iloc[0]) if len(ids) == 1 else ""
        tags = st.text_input(
            "Tags (comma separated; replaces the tags of every selected run)",
            value=current,
            key=f"runs.tags.{'-'.join(ids)[:60]}",
        )
        if st.button("Set tags", key="runs.tags_go"):
            with ui.guard("tagging"):
                for rid in ids:
                    mgr.set_tags(rid, [t.strip() for t in tags.split(",") if t.strip()])
                st.rerun(scope="fragment")
    errors = selected[selected["error"].astype(bool)]
    for _, r in errors.iterrows():
        st.error(f"**{ui.plain(r['name'])}** failed: {ui.plain(r['error'])}", icon=":material/error:")


runs_table()
