"""Launch: choose one or more strategies (those that cannot run this roster are disabled with the
reason), set their parameters, the rounds, seeds and executor, and start the runs."""

from __future__ import annotations

import copy

import streamlit as st

from engine.design import choices, forms, launching
from engine.errors import ConfigError
from engine.labels import for_page
from pages.common import cached, robustness, ui
from pages.common import flower as flower_ui
from pages.common import privacy as privacy_ui

ui.enter_page()
st.title("Launch")
st.caption("Pick the strategies to try. Several strategies and seeds at once make a sweep you can compare.")
ui.flash()

design = ui.design()
name = st.text_input(
    "Experiment name", value=design.get("name", "experiment"), key=ui.key("launch.name"), max_chars=120
)
if name != design.get("name"):
    design = {**design, "name": name}
    ui.set_design(design)

# ---- strategies -----------------------------------------------------------------------------------
st.subheader("Strategy")
entries = cached.strategies(design)
design_broken = all(str(e["reason"] or "").startswith("fix the design first") for e in entries)
if design_broken:
    ui.show_problems(cached.design_problems(design), "Fix the design first (Data and Clients pages)")
current = design.get("strategy", {}).get("name", "fedavg")
chosen_key = ui.key("launch.chosen")
if chosen_key not in st.session_state:
    st.session_state[chosen_key] = [current]
chosen: list[str] = [
    s for s in st.session_state[chosen_key] if any(e["name"] == s and e["reason"] is None for e in entries)
]

order = ["baseline", "parameter sharing", "knowledge sharing", "knowledge distillation", "reference"]


def _family_rank(fam: str) -> tuple[int, str]:
    return (order.index(fam) if fam in order else len(order), fam)


def _why(reason: str) -> tuple[str, str]:
    """A refusal in the page's words, split into why and what to try instead (the strategies that
    can run this roster, as the command line suggests them)."""
    why, _, alternatives = for_page(reason).partition("; try ")
    return why, alternatives


picked: list[str] = []
ok_entries = [e for e in entries if e["reason"] is None]
blocked = [e for e in entries if e["reason"] is not None]
by_reason = {e["name"]: e["reason"] for e in blocked}
families: dict[str, list[dict]] = {}
for e in ok_entries:
    families.setdefault(e["family"], []).append(e)
fam_names = sorted(families, key=_family_rank)
st.markdown(f"**Can run this roster** ({len(ok_entries)})")
cols = st.columns(max(1, len(fam_names)))
for col, fam in zip(cols, fam_names, strict=False):
    with col:
        st.caption(fam.upper())
        for e in families[fam]:
            mixed = " Works with mixed models." if e.get("mixed_architectures") else ""
            if st.checkbox(
                e["name"],
                value=e["name"] in chosen,
                key=ui.key(f"launch.s.{e['name']}"),
                help=f"{e['description']}{mixed}" + (f"\n\nPaper: {e['paper']}" if e.get("paper") else ""),
            ):
                picked.append(e["name"])
if design_broken:
    st.caption("The strategies that can run this roster are listed once the design above is valid.")
elif blocked:
    with st.container(border=True):
        st.markdown(f"**Cannot run this roster** ({len(blocked)}) — what each one needs:")
        alternatives = next((alt for alt in (_why(e["reason"])[1] for e in blocked) if alt), "")
        if alternatives:
            st.caption(f":material/lightbulb: **Try instead** (these can run it): {alternatives}")
        bcols = st.columns(2)
        for i, e in enumerate(sorted(blocked, key=lambda e: (_family_rank(e["family"]), e["name"]))):
            with bcols[i % 2]:
                st.checkbox(
                    e["name"],
                    value=False,
                    disabled=True,
                    key=ui.key(f"launch.s.{e['name']}"),
                    help=e["description"],
                )
                st.caption(_why(e["reason"])[0])
st.session_state[chosen_key] = picked
if not design_broken and current in {e["name"] for e in blocked}:
    why, alternatives = _why(by_reason[current])
    st.warning(
        f"The design's strategy **{current}** (from the imported or forked config) cannot run this roster: "
        f"{why}." + (f" Pick one that can above, e.g. {alternatives}." if alternatives else ""),
        icon=":material/warning:",
    )

if not picked:
    st.info("Tick at least one strategy above. Disabled ones say what they need.")
strategy_params: dict[str, dict] = {}
by_name = {e["name"]: e for e in entries}
for s in picked:
    e = by_name[s]
    fields = forms.strategy_fields(s)
    values = {k: v for k, v in design.get("strategy", {}).items() if k != "name"} if s == current else {}
    with st.expander(f"**{s}** — {e['description']}", expanded=bool(fields) and len(picked) <= 2):
        link = f"[{e['paper']}]({e['url']})" if e.get("url") else e.get("paper", "")
        if link:
            st.markdown(f":material/article: {link}")
        if fields:
            strategy_params[s] = ui.params_form(fields, values, f"launch.p.{s}")
        else:
            st.caption("No parameters.")
            strategy_params[s] = {}

defences = robustness.defence_picker(design, picked)

# ---- run settings ---------------------------------------------------------------------------------
st.subheader("Run settings")
settings = ui.params_form(forms.launch_fields(), design, "launch.cfg", columns=4)
settings.update(privacy_ui.launch_settings(design))  # server DP, secure aggregation (pages/common/privacy.py)
chosen_metric = cached.primary_preview({**design, **settings})
if chosen_metric:
    st.caption(
        f":material/flag: Headline of every chart, table and verdict: **{chosen_metric[0]}** "
        f"({chosen_metric[1]}); "
        f"it also picks each client's best round on its validation data."
    )
r1, r2, r3 = st.columns(3)
seeds_text = r1.text_input(
    "Seeds",
    value=str(design.get("seed", 0)),
    key=ui.key("launch.seeds"),
    help="one run per seed: 0, 1, 2 or a range 0-4; the mean ± std over seeds shows on Compare",
)
executors = choices.executors()
ex_names = list(executors)
executor = r2.selectbox(
    "Executor",
    ex_names,
    format_func=lambda n: f"{n} (not installed)" if n in choices.executor_unavailable() else n,
    index=ex_names.index(design.get("executor", "sequential"))
    if design.get("executor", "sequential") in ex_names
    else 0,
    key=ui.key("launch.executor"),
    help="\n\n".join(f"**{k}**: {v}" for k, v in executors.items()),
)
options = dict(design.get("executor_options") or {})
unavailable = choices.executor_unavailable()
if executor in unavailable:
    r3.error(unavailable[executor], icon=":material/block:")
if executor == "threads":
    options["workers"] = int(
        r3.number_input("Workers", 1, 64, int(options.get("workers", 2)), key=ui.key("launch.workers"))
    )
else:
    options.pop("workers", None)
if executor == "ray" and executor not in unavailable:
    options["ray_address"] = r3.text_input(
        "Ray address",
        value=str(options.get("ray_address", "local")),
        key=ui.key("launch.ray_address"),
        help="local (start Ray here), auto (join this machine's cluster) or ray://host:10001",
    )
else:
    options.pop("ray_address", None)
tags_text = st.text_input(
    "Tags (comma separated)", key=ui.key("launch.tags"), placeholder="e.g. baseline, paper-fig-2"
)

seeds: list[int] = []
seed_error = None
try:
    seeds = launching.parse_seeds(seeds_text)
except ConfigError as exc:
    seed_error = str(exc)

new = copy.deepcopy(design)
new.update(settings)
new["executor"], new["executor_options"] = executor, options
if seeds:
    new["seed"] = seeds[0]
if picked:
    new["strategy"] = {"name": picked[0], **strategy_params.get(picked[0], {})}
new["defence"] = defences[0]
if new != design:
    ui.set_design(new)
    design = new

# ---- checks and launch ----------------------------------------------------------------------------
problems = [] if not picked or design_broken else cached.design_problems(design)
if seed_error:
    problems.append(seed_error)
if executor in unavailable:
    problems.append(f"executor: {unavailable[executor]}")
for w in cached.design_warnings(design):
    st.warning(for_page(w), icon=":material/warning:")
n_runs = len(picked) * len(defences) * max(1, len(seeds))
ui.show_problems(problems)
flower_ui.panel(design, picked[0] if picked else None, disabled=bool(problems) or not picked)
label = (
    "Launch"
    if n_runs <= 1
    else (
        f"Launch {n_runs} runs ({len(picked)} strategies × "
        + (f"{len(defences)} defences × " if len(defences) > 1 else "")
        + f"{len(seeds)} seeds)"
    )
)
if st.button(
    label,
    type="primary",
    key="launch.go",
    disabled=bool(problems) or not picked,
    width="stretch",
    icon=":material/rocket_launch:",
):
    launched = None
    with ui.guard("launching"):
        launched = launching.launch(
            design,
            strategies=picked,
            seeds=seeds,
            strategy_params=strategy_params,
            name=design.get("name"),
            tags=[t for t in tags_text.split(",") if t.strip()],
            mgr=ui.manager(),
            defences=defences,
        )
    if launched is not None:
        if len(launched.run_ids) == 1:
            ui.flash_later("Run launched: the charts fill in as rounds finish.", "success")
            ui.open_run(launched.run_ids[0])
        ui.flash_later(f"Launched {len(launched.run_ids)} runs (sweep {launched.group_id}).", "success")
        st.session_state["runs_search"] = launched.group_id or ""
        ui.goto("runs")
