"""Clients: the roster as an editable table. Each row is one client with its own model, training
settings, preprocessing, device and simulated hardware tier."""

from __future__ import annotations

from typing import Any

import streamlit as st

from engine.design import adversaries, choices, document, forms, roster, roster_table, schema, sizes
from engine.robustness.design import adversary_cells
from pages.common import cached, ui

ui.enter_page()
st.title("Clients")
st.caption(
    "One row per client. Edit cells directly; tick **select** to act on several rows at once. "
    "Sizes scale every hidden width of the architecture (tiny ×0.25 … x-large ×4); *knobs* sets "
    "architecture-specific sizes such as `hidden=64, depth=3`."
)
ui.flash()

design = ui.design()
frame = roster_table.roster_frame(design)
summary = None
with ui.guard("loading the dataset"):
    summary = schema.dataset_summary(design.get("data") or {})

m = st.columns(5)
m[0].metric("Clients", len(frame))
m[1].metric("Architectures", frame["arch"].nunique() if len(frame) else 0)
m[2].metric("Parameters, all clients", f"{int(frame['params'].fillna(0).sum()):,}")
m[3].metric("Largest model (params)", f"{int(frame['params'].fillna(0).max() if len(frame) else 0):,}")
m[4].metric(
    "Memory, largest (MB)",
    f"{float(frame['memory_mb'].fillna(0).max() if len(frame) else 0):.1f}",
    help="estimated training memory of the largest client: weights, gradients, optimiser state, "
    "activations of one batch",
)
if summary:
    st.caption(
        f"Every client reads `{summary['input']}` input ({summary['task']}, {summary['samples']:,} samples "
        f"in `{summary['name']}`)."
    )
compromised = adversaries.compromised_summary(design)
if compromised:
    st.caption(f":material/gpp_maybe: {compromised} Choose defences on the Launch page.")

reads = choices.architectures()
fields = {**forms.client_fields(), **forms.privacy_column_fields()}  # kinds, bounds, help of ClientSpec
defaults = roster.DEFAULTS


def bounds(name: str) -> dict[str, float | int | None]:
    """A roster column's limits as :class:`~engine.config.ClientSpec` (or, for the privacy columns,
    :class:`~engine.privacy.config.ClientPrivacy`) declares them (a strict bound
    such as a learning rate above 0 is shown as its edge; the row's issues name a value on it)."""
    cast = int if fields[name].kind == "int" else float
    spec = fields[name]
    return {
        "min_value": None if spec.minimum is None else cast(spec.minimum),
        "max_value": None if spec.maximum is None else cast(spec.maximum),
    }


arch_names = list(reads)
PREPROCESSING = choices.preprocessing_methods()
tiers = choices.tier_names(design)
size_options = list(sizes.SIZES) + ["custom"]
kind = summary["kind"] if summary else None
arch_help = "model family; " + (
    f"these read {kind} input: " + ", ".join(n for n in arch_names if kind in reads[n]) if kind else ""
)
column_config = {
    "select": st.column_config.CheckboxColumn(
        "select", help="tick rows to edit or remove them together", width="small"
    ),
    "name": st.column_config.TextColumn("name", required=True, max_chars=80),
    "arch": st.column_config.SelectboxColumn(
        "architecture", options=arch_names, required=True, help=arch_help
    ),
    "size": st.column_config.SelectboxColumn(
        "size",
        options=size_options,
        required=True,
        help="width multiplier: " + ", ".join(f"{k} ×{v:g}" for k, v in sizes.SIZES.items()),
    ),
    "knobs": st.column_config.TextColumn(
        "knobs", help="architecture knobs other than size, e.g. hidden=64, depth=3 (see the Catalog)"
    ),
    "optimizer": st.column_config.SelectboxColumn(
        "optimizer", options=list(choices.OPTIMIZERS), required=True, help=fields["optimizer"].description
    ),
    "lr": st.column_config.NumberColumn(
        "lr", **bounds("lr"), step=1e-4, format="%.4g", help=fields["lr"].description, required=True
    ),
    "epochs": st.column_config.NumberColumn(
        "epochs", **bounds("epochs"), step=1, required=True, help=fields["epochs"].description
    ),
    "batch_size": st.column_config.NumberColumn(
        "batch", **bounds("batch_size"), step=1, required=True, help=fields["batch_size"].description
    ),
    "preprocessing": st.column_config.SelectboxColumn(
        "preprocessing",
        options=list(PREPROCESSING),
        required=True,
        help="fitted on this client's own training data",
    ),
    "device": st.column_config.SelectboxColumn(
        "device", options=choices.device_names(), required=True, help="where this client really computes"
    ),
    "tier": (
        st.column_config.SelectboxColumn(
            "tier",
            options=[""] + tiers,
            help="simulated device tier (speed, bandwidth, availability); see the Catalog",
        )
        if tiers
        else st.column_config.TextColumn("tier", help="simulated device tier")
    ),
    "join_round": st.column_config.NumberColumn(
        "joins at", **bounds("join_round"), step=1, required=True, help=fields["join_round"].description
    ),
    "data_share": st.column_config.NumberColumn(
        "data share",
        **bounds("data_share"),
        step=0.01,
        format="%.3f",
        help="share of the training pool (iid and quantity splits); empty: an equal part of what is left",
    ),
    "attack": st.column_config.SelectboxColumn(
        "attack",
        options=adversaries.attack_options(),
        required=True,
        help="a compromised client and what it does. " + adversaries.attack_help(),
    ),
    "attack_settings": st.column_config.TextColumn(
        "attack settings",
        help="settings other than the defaults, e.g. target=3, share=0.5 (see the Catalog's attacks)",
    ),
    "dp_epsilon": st.column_config.NumberColumn(
        "ε budget",
        **bounds("dp_epsilon"),
        step=0.1,
        format="%.3g",
        help="differential privacy (DP-SGD on this client's records): the privacy budget ε this client may "
        "spend; it stops training when the next round would exceed it. Empty: no budget (and no DP unless a "
        "DP noise is set). Smaller is more private",
    ),
    "dp_noise": st.column_config.NumberColumn(
        "DP noise",
        **bounds("dp_noise"),
        step=0.1,
        format="%.3g",
        help="noise added to each DP-SGD step, as a multiple of the clipping norm; empty with an ε budget: "
        "calibrated so the run spends exactly that budget",
    ),
    "dp_clip": st.column_config.NumberColumn(
        "DP clip",
        **bounds("dp_clip"),
        step=0.1,
        format="%.3g",
        help="DP-SGD: each record's gradient is scaled down to at most this length (1 when empty)",
    ),
    "params": st.column_config.NumberColumn(
        "params", help="trainable parameters for this dataset", format="%d"
    ),
    "memory_mb": st.column_config.NumberColumn("memory MB", help="estimated training memory", format="%.2f"),
    "issues": st.column_config.TextColumn(
        "issues", width="medium", help="what to fix in this row (hover to read)"
    ),
}
edited = st.data_editor(
    frame,
    key=ui.key(f"roster.{document.fingerprint(design)}"),
    hide_index=False,
    width="stretch",
    column_config=column_config,
    disabled=["params", "memory_mb", "issues"],
    num_rows="dynamic",
    column_order=roster_table.EDITOR_ORDER,
    height=min(38 + 35 * (len(frame) + 1), 560),
)
if not edited.drop(columns=["select"]).reset_index(drop=True).equals(frame.drop(columns=["select"])):
    if len(edited) == 0:
        st.error("The roster needs at least one client; add a row.")
    else:
        new = roster_table.frame_to_clients(edited.reset_index(drop=True), design)
        if new != roster_table.frame_to_clients(frame, design):
            ui.set_design(roster.set_clients(design, new))
            st.rerun()

issues = cached.client_issues(design)
if issues:
    rows = roster.expanded_rows(design)
    st.warning(
        "**Rows to fix:**\n"
        + "\n".join(
            f"- row {i} **{rows[i].get('name')}**: {'; '.join(msgs)}" for i, msgs in sorted(issues.items())
        ),
        icon=":material/warning:",
    )

selected = [int(i) for i in edited.index[edited["select"].fillna(False).astype(bool)]] if len(edited) else []

st.subheader("Edit several clients")
t1, t2, t3 = st.columns(3)
with t1.container(border=True):
    st.markdown("**Add clients like this one**")
    names = list(frame["name"])
    if names:
        src = st.selectbox(
            "Copy",
            range(len(names)),
            format_func=lambda i: f"{i}: {names[i]}",
            key="cl.like_src",
            index=selected[0] if selected and selected[0] < len(names) else 0,
        )
        n_add = st.number_input(
            "How many", min_value=1, max_value=roster.MAX_ADD, value=1, step=1, key="cl.like_n"
        )
        if st.button("Add", key="cl.add", icon=":material/add:", width="stretch"):
            with ui.guard("adding clients"):
                ui.set_design(roster.add_like(design, int(src), int(n_add)), replace=True)
                st.rerun()
with t2.container(border=True):
    st.markdown(f"**Apply a value to selected rows** ({len(selected)} selected)")
    field = st.selectbox(
        "Field",
        roster_table.BULK_FIELDS,
        key="cl.bulk_field",
        format_func=lambda f: column_config[f]["label"] if f.startswith("dp_") else f,
    )
    if field in ("arch", "size", "optimizer", "preprocessing", "device", "tier", "attack"):
        options = {
            "arch": arch_names,
            "size": list(sizes.SIZES),
            "optimizer": list(choices.OPTIMIZERS),
            "preprocessing": list(PREPROCESSING),
            "device": choices.device_names(),
            "tier": [""] + tiers,
            "attack": adversaries.attack_options(),
        }[field]
        value = st.selectbox("Value", options, key=f"cl.bulk_value.{field}")
    elif field in ("dp_epsilon", "dp_noise", "dp_clip"):
        value = st.number_input(
            "Value (0 clears it)",
            min_value=0.0,
            max_value=bounds(field)["max_value"],
            value={"dp_epsilon": 4.0, "dp_noise": 1.0, "dp_clip": 1.0}[field],
            step=0.1,
            format="%.3g",
            key=f"cl.bulk_value.{field}",
        )
    elif field in ("epochs", "batch_size", "join_round"):
        value = int(
            st.number_input(
                "Value", **bounds(field), value=defaults[field], step=1, key=f"cl.bulk_value.{field}"
            )
        )
    else:
        value = st.number_input(
            "Value",
            **bounds(field),
            value=defaults[field] or 0.1,
            format="%.4g",
            key=f"cl.bulk_value.{field}",
        )
    if st.button("Apply to selected", key="cl.apply", width="stretch", disabled=not selected):
        with ui.guard("applying the value"):
            ui.set_design(roster_table.apply_to(design, selected, field, value), replace=True)
            st.rerun()
with t3.container(border=True):
    st.markdown("**Remove or resize**")
    if st.button(
        f"Remove {len(selected)} selected",
        key="cl.remove",
        icon=":material/delete:",
        width="stretch",
        disabled=not selected or len(selected) >= len(frame),
    ):
        ui.set_design(roster.remove_clients(design, selected), replace=True)
        st.rerun()
    n_total = st.number_input(
        "Roster size",
        min_value=1,
        max_value=roster.MAX_CLIENTS,
        value=max(1, len(frame)),
        step=1,
        key="cl.resize_n",
        help="extra clients copy the last one",
    )
    if st.button("Resize roster", key="cl.resize", width="stretch", disabled=int(n_total) == len(frame)):
        ui.set_design(roster.resize_roster(design, int(n_total)), replace=True)
        st.rerun()

st.subheader("Edit one client in detail")
rows = roster.expanded_rows(design)
if rows:
    pick = st.selectbox(
        "Client",
        range(len(rows)),
        format_func=lambda i: f"{i}: {rows[i].get('name')}",
        key="cl_edit_pick",
        index=selected[0] if len(selected) == 1 else 0,
    )
    row = roster.client_row(design, int(pick))
    model = row["model"]
    with st.form(key=f"cl_edit_form_{pick}_{document.fingerprint(row)}", border=True):
        a, b, c, d = st.columns(4)
        name = a.text_input("Name", row.get("name", ""), max_chars=80)
        arch = b.selectbox(
            "Architecture",
            arch_names,
            index=arch_names.index(model.get("arch")) if model.get("arch") in arch_names else 0,
            help=arch_help,
        )
        size_now = sizes.size_label(model.get("width", 1.0))
        size = c.selectbox("Size", size_options, index=size_options.index(size_now))
        knobs = d.text_input(
            "Knobs", sizes.knobs_text(model), help="e.g. hidden=64, depth=3 (see the Catalog)"
        )
        form_key = f"cl_edit.{pick}.{document.fingerprint(row)}"

        def widget(
            name: str,
            column: Any,
            label: str,
            values: dict[str, Any] = row,
            specs: dict[str, forms.FieldSpec] = fields,
        ) -> Any:
            """A form widget generated from the field's model (kind, bounds, default, help)."""
            spec = specs[name]
            return ui.field_widget(
                spec, values.get(name, spec.default), f"{form_key}.{name}", container=column, label=label
            )

        a, b, c, d = st.columns(4)
        optimizer = widget("optimizer", a, "Optimizer")
        lr = widget("lr", b, "Learning rate")
        momentum = widget("momentum", c, "SGD momentum")
        wd = widget("weight_decay", d, "Weight decay")
        a, b, c, d = st.columns(4)
        epochs = widget("epochs", a, "Local epochs")
        batch = widget("batch_size", b, "Batch size")
        prep = c.selectbox(
            "Preprocessing",
            list(PREPROCESSING),
            index=list(PREPROCESSING).index(row.get("preprocessing", defaults["preprocessing"]))
            if row.get("preprocessing", defaults["preprocessing"]) in PREPROCESSING
            else 0,
        )
        devices = choices.device_names()
        device_now = row.get("device", defaults["device"])
        device = d.selectbox(
            "Device", devices, index=devices.index(device_now) if device_now in devices else 0
        )
        a, b, c, d = st.columns(4)
        tier_opts = [""] + tiers
        tier = (
            a.selectbox(
                "Device tier",
                tier_opts,
                index=tier_opts.index(row.get("tier") or "") if (row.get("tier") or "") in tier_opts else 0,
                format_func=lambda t: t or "none (not simulated)",
            )
            if tiers
            else a.text_input("Device tier", row.get("tier") or "")
        )
        join = widget("join_round", b, "Joins at round")
        share = widget("data_share", c, "Data share (empty: automatic)")
        cold = widget("cold_start", d, "Cold start when joining late")
        aug = dict(row.get("augment") or {})
        augment = forms.augment_fields()
        a, b, c, _ = st.columns(4)
        flip = widget("flip", a, "Augment: random flips", aug, augment)
        crop = widget("crop", b, "Augment: crop padding (px)", aug, augment)
        noise = widget("noise", c, "Augment: input noise (std)", aug, augment)
        attack_now, settings_now = adversary_cells(row.get("adversary"))
        a, b = st.columns([1, 3])
        attacks = adversaries.attack_options()
        attack = a.selectbox(
            "Attack",
            attacks,
            index=attacks.index(attack_now) if attack_now in attacks else 0,
            help="a compromised client and what it does. " + adversaries.attack_help(),
        )
        attack_settings = b.text_input(
            "Attack settings",
            settings_now,
            help="settings other than the defaults, e.g. target=3, share=0.5 (see the Catalog's attacks)",
        )
        dp = dict(row.get("privacy") or {})
        st.markdown("**Differential privacy** (DP-SGD on this client's records; see the ε budget column)")
        privacy = forms.privacy_fields()
        a, b, c, d = st.columns(4)
        dp_on = a.checkbox("Train with differential privacy", bool(dp))
        dp_eps = widget("target_epsilon", b, "ε budget (empty: none)", dp, privacy)
        dp_noise = widget("noise_multiplier", c, "DP noise (empty: calibrate from ε)", dp, privacy)
        dp_clip = widget("clip_norm", d, "DP clip", dp, privacy)
        a, b, _, _ = st.columns(4)
        dp_delta = widget("delta", a, "δ (empty: 1 / records)", dp, privacy)
        accountants = privacy["accountant"].choices
        acc_now = dp.get("accountant", privacy["accountant"].default)
        dp_acc = b.selectbox(
            "Accountant",
            accountants,
            index=accountants.index(acc_now) if acc_now in accountants else 0,
            help=privacy["accountant"].description,
            format_func=lambda a: {"rdp": "RDP (Rényi)", "prv": "PRV (tighter, slower)"}.get(a, a),
        )
        if st.form_submit_button("Save client", type="primary"):
            with ui.guard("saving the client"):
                changes = {
                    "name": name.strip() or row.get("name"),
                    "arch": arch,
                    "size": size,
                    "knobs": knobs,
                    "optimizer": optimizer,
                    "lr": lr,
                    "momentum": momentum,
                    "weight_decay": wd,
                    "epochs": int(epochs),
                    "batch_size": int(batch),
                    "preprocessing": prep,
                    "device": device,
                    "tier": tier or None,
                    "join_round": int(join),
                    "data_share": share or None,
                    "cold_start": cold,
                    "augment": {**aug, "flip": flip, "crop": int(crop), "noise": noise},
                    "adversary": adversaries.adversary_form(attack, attack_settings),
                    "privacy": (
                        {
                            "clip_norm": dp_clip,
                            "target_epsilon": dp_eps or None,
                            "noise_multiplier": dp_noise or None,
                            "delta": dp_delta or None,
                            "accountant": dp_acc,
                        }
                        if dp_on
                        else None
                    ),
                }
                ui.set_design(roster.update_client(design, int(pick), changes), replace=True)
                ui.flash_later(f"Saved client {name}.", "success")
                st.rerun()

st.divider()
n1, n2 = st.columns(2)
if n1.button("← Data", key="cl.back", width="stretch"):
    ui.goto("data")
if n2.button("Next: launch →", type="primary", key="cl.next", width="stretch"):
    ui.goto("launch")
