"""Advisor: which strategy should this federation use? Short pilot runs of every strategy that can
run the designed roster, each paired with training alone on the same split, scored on the clients'
validation rows; a ranked table with intervals and costs; one click to launch the winner with its
paired local runs. The pilots run in the background (Runs page) and this page polls them."""

from __future__ import annotations

import math

import pandas as pd
import streamlit as st

from engine import advisor
from engine.design import document
from engine.errors import FedMosaicError
from engine.labels import for_page
from engine.tracking import pilots
from pages.common import cached, ui

ui.enter_page()
st.title("Advisor")
st.caption(
    "Which strategy should this federation use? The advisor runs a few rounds of every strategy that can "
    "run your roster, each beside training alone on exactly the same data, and ranks them by how much "
    "they gain on the clients' validation rows (never their test rows), with a 95% interval and what they "
    "cost."
)
ui.flash()

design = ui.design()
problems = cached.design_problems(design)
if problems:
    ui.show_problems(problems, "Fix the design first (Data and Clients pages)")
    st.stop()
mgr = ui.manager_or_stop()
store = mgr.store
config = document.parse(design)

st.subheader("Pilots")
entries = [e for e in cached.strategies(design) if e["reason"] is None and e["name"] not in advisor.SKIP]
names = [e["name"] for e in entries]
a, b, c = st.columns([1, 1, 3])
rounds = a.number_input(
    "Rounds per pilot",
    min_value=1,
    max_value=max(1, config.rounds),
    value=min(advisor.PILOT_ROUNDS, config.rounds),
    key=ui.key("adv.rounds"),
    help="Few rounds favour strategies that learn fast over ones that overtake later.",
)
n_seeds = b.number_input(
    "Seeds",
    min_value=1,
    max_value=5,
    value=advisor.PILOT_SEEDS,
    key=ui.key("adv.seeds"),
    help="Two or more give an interval over seeds; one gives an interval over clients.",
)
chosen = c.multiselect(
    "Strategies to try",
    names,
    default=names,
    key=ui.key("adv.strategies"),
    help="Every strategy that can run this roster; training alone runs with each seed.",
)
per_seed = len(chosen) + 1
st.caption(
    f"{per_seed * int(n_seeds)} pilot runs of {int(rounds)} round(s): {len(chosen)} strateg"
    f"{'y' if len(chosen) == 1 else 'ies'} and training alone, on seed(s) "
    f"{', '.join(str(s) for s in advisor.pilot_seeds(config, int(n_seeds)))}. They run in the background "
    f"as one group on the Runs page, as many at once as the machine allows."
)
if st.button("Run the pilots", type="primary", icon=":material/science:", disabled=not chosen):
    with ui.guard("launching the pilots"):
        group = pilots.launch_pilots(
            mgr,
            config,
            rounds=int(rounds),
            strategies=chosen,
            seeds=advisor.pilot_seeds(config, int(n_seeds)),
        )
        st.session_state["advisor_group"] = group
        st.session_state["advisor_design"] = document.fingerprint(design)
        st.rerun()

group = st.session_state.get("advisor_group")
if not group:
    st.stop()
if st.session_state.get("advisor_design") != document.fingerprint(design):
    st.info(
        "The design changed since these pilots were launched; the advice below is for the design as it was "
        "then. Run the pilots again to advise on the current one.",
        icon=":material/info:",
    )


def fmt(value: float, digits: int = 3) -> str:
    return "—" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def show_advice() -> None:
    counts = pilots.pilot_status(store, group)
    total = sum(counts.values())
    done = counts.get("finished", 0) + counts.get("failed", 0) + counts.get("cancelled", 0)
    if done < total:
        st.progress(done / max(total, 1), text=f"{done} of {total} pilot runs done")
    elif pending:
        st.rerun(scope="app")  # all finished while we watched: stop polling
    if not counts.get("finished"):
        return
    try:
        advice = pilots.advice_for(store, group, config)
    except FedMosaicError as exc:
        st.info(str(exc), icon=":material/hourglass_top:")
        return
    st.subheader("Recommendation")
    best = advice.recommended
    (st.success if best else st.info)(
        advice.sentence + ("" if done >= total else " (some pilots still running)"),
        icon=":material/recommend:",
    )
    m = advice.metric
    scale = m.scale
    rows = []
    for r in advice.table():
        rows.append(
            {
                "rank": r["rank"],
                "strategy": r["strategy"],
                f"validation {m.label}": fmt(r["validation"]),
                "gain over local": (f"{r['gain'] * scale:+.1f}" if scale == 100 else f"{r['gain']:+.3f}")
                if math.isfinite(r["gain"])
                else "—",
                "95% interval": (
                    f"{r['low'] * scale:+.1f} to {r['high'] * scale:+.1f}"
                    if scale == 100
                    else f"{r['low']:+.3f} to {r['high']:+.3f}"
                )
                if math.isfinite(r["low"]) and math.isfinite(r["high"])
                else "—",
                "verdict": r["outcome"],
                f"MB over {advice.design_rounds} rounds": fmt(r["MB"], 2),
                f"simulated s over {advice.design_rounds} rounds": fmt(r["simulated_s"], 1),
            }
        )
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
    st.caption(
        f"Gains are the strategy's validation {m.label} minus training alone's, client by client on the "
        f"same split and seed ({m.unit or 'metric units'}); the interval is over seeds with two or more, "
        f"over clients with one. Costs are measured in the pilots and projected to the "
        f"{advice.design_rounds} rounds of the design; simulated time needs device tiers (Clients page). "
        f"Training alone scored {fmt(advice.local.value)}."
    )
    for note in advice.notes:
        st.caption(note)
    if advice.skipped:
        with st.expander(f"Strategies that cannot run this roster ({len(advice.skipped)})"):
            for name, why in advice.skipped.items():
                st.markdown(f"- **{name}**: {for_page(why)}")
    if best is not None:
        seeds = [config.seed]
        if st.button(
            f"Launch {best.strategy} with its paired local baseline ({config.rounds} rounds)",
            type="primary",
            icon=":material/rocket_launch:",
            key="adv.launch",
        ):
            with ui.guard("launching"):
                _, ids = pilots.launch_recommended(mgr, config, best.strategy, seeds=seeds)
                ui.flash_later(
                    f"Launched {best.strategy} and local on seed {seeds[0]}; the verdict on Results "
                    f"pairs them when both have finished."
                )
                ui.open_run(ids[0])


pending = any(s in ("queued", "running") for s in pilots.pilot_status(store, group))
st.fragment(show_advice, run_every=2 if pending else None)()
