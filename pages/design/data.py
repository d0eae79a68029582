"""Data: pick a dataset or a CSV, check its inferred schema, choose the target and how the data is
split across clients, and see the split before anything runs."""

from __future__ import annotations

import copy

import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from engine.data.config import COLUMN_TYPES
from engine.design import choices, document, forms, images, roster, scenarios, schema, split
from engine.labels import dataset_label, label
from pages.common import ui

ui.enter_page()
st.title("Data")
st.caption(
    "Which data the clients hold, and how it is divided between them. The preview below updates "
    "as you change the split; nothing is trained until you launch."
)
ui.flash()

design = ui.design()
data = copy.deepcopy(design.get("data") or {"dataset": "digits"})


def commit(new_data: dict, *, rerun: bool = False, new_design: dict | None = None) -> None:
    """Write the data section (and optionally a resized roster) back to the design."""
    d = copy.deepcopy(new_design or ui.design())
    d["data"] = new_data
    ui.set_design(d)
    if rerun:
        st.rerun()


# ---- dataset ------------------------------------------------------------------------------------
catalog = {d["name"]: d for d in choices.datasets()}
names = list(catalog)
current = data.get("dataset", "digits")
col_a, col_b = st.columns([1, 2])
dataset = col_a.selectbox(
    "Dataset",
    names,
    index=names.index(current) if current in names else 0,
    key=ui.key("data.dataset"),
    format_func=lambda n: "your own file (CSV, Excel, Parquet)" if n == "csv" else n,
)
info = catalog.get(dataset, {})
col_b.markdown(
    f"{info.get('description', '')}  \n*{info.get('kind', '')} · {info.get('task', '')} · "
    f"{info.get('source', '')}*"
)


def commit_table(new_data: dict) -> None:
    """A table was chosen: commit it, and have the clients standardise its columns when nobody
    chose a preprocessing yet (raw columns in mg/dL next to 0/1 flags train badly)."""
    d, _ = roster.standardize_for_tables(ui.design())
    commit(new_data, rerun=True, new_design=d)


def forget_split_widgets() -> None:
    """A new dataset or file starts from an iid split: drop what the split widgets remember."""
    for name in ("data.partition", "data.natural_col", "data.split_column"):
        st.session_state.pop(ui.key(name), None)


if dataset != current:
    keep = {
        k: data[k]
        for k in ("test_fraction", "global_test_fraction", "public_fraction", "max_samples")
        if k in data
    }
    data = {"dataset": dataset, "partition": {"method": "iid"}, **keep}
    forget_split_widgets()
    commit(data, rerun=True)

if dataset != "csv" and "http" in str(info.get("source", "")):  # a dataset downloaded as files
    with st.expander("Where the files are", expanded=bool(data.get("path"))):
        folder = st.text_input(
            "Folder holding the downloaded files (empty: the data directory)",
            value=data.get("path") or "",
            key=ui.key("data.path"),
            help=forms.data_field("path").description,
        )
        data["path"] = folder.strip() or None
        data["download"] = st.checkbox(
            "Download missing files when a network is available",
            value=bool(data.get("download", True)),
            key=ui.key("data.download"),
        )

option_fields = forms.dataset_option_fields(dataset)
if option_fields:
    with st.expander(f"Options of {dataset}", expanded=False):
        options = ui.params_form(option_fields, data.get("options") or {}, f"data.options.{dataset}")
        if options != (data.get("options") or {}):
            data["options"] = options


def reading_controls(data: dict, report: dict | None, expanded: bool) -> None:
    """How the file is read: text encoding, separator and decimal mark (detected, editable), or
    the sheet of a workbook; edits ``data`` in place."""
    how = report or {}
    fmt = how.get("format", "csv")
    detected = set(how.get("detected") or [])
    path = str(data.get("path"))
    with st.expander("Reading the file", expanded=expanded):
        if fmt == "xlsx":
            sheets = how.get("sheets") or []
            if sheets:
                now = data.get("sheet") or how.get("sheet") or sheets[0]
                sheet = st.selectbox(
                    label("data.sheet"),
                    sheets,
                    index=sheets.index(now) if now in sheets else 0,
                    key=ui.key(f"data.sheet.{path}"),
                )
                data["sheet"] = None if sheet == sheets[0] and not data.get("sheet") else sheet
            st.caption(
                "Excel workbook: cells are read as they are stored (numbers as numbers, dates as dates)."
            )
            return
        if fmt == "parquet":
            st.caption("Parquet file: columns are read with the types they were saved with.")
            return
        c1, c2, c3 = st.columns(3)
        enc_now = data.get("encoding", "auto") or "auto"
        enc_auto = (
            f"auto (detected: {how['encoding']})"
            if how.get("encoding") and "encoding" in detected
            else "auto"
        )
        encodings = ["auto", *schema.ENCODINGS] + (
            [enc_now] if enc_now not in ("auto", *schema.ENCODINGS) else []
        )
        enc = c1.selectbox(
            label("data.encoding"),
            encodings,
            index=encodings.index(enc_now),
            format_func=lambda e: enc_auto if e == "auto" else e,
            key=ui.key(f"data.encoding.{path}"),
            help="auto: UTF-8 when the file is valid UTF-8, else the most plausible encoding "
            "(Windows-1252 for most Western European Excel exports)",
        )
        data["encoding"] = enc
        seps = {"auto": None, ", (comma)": ",", "; (semicolon)": ";", "tab": "\t", "| (pipe)": "|"}
        now = next((k for k, v in seps.items() if v == data.get("delimiter")), "auto")
        shown_sep = next((k for k, v in seps.items() if v == how.get("delimiter")), None)
        sep = c2.selectbox(
            label("data.delimiter"),
            list(seps),
            index=list(seps).index(now),
            format_func=lambda k: (
                f"auto (detected: {shown_sep})"
                if k == "auto" and shown_sep and "delimiter" in detected
                else k
            ),
            key=ui.key(f"data.delimiter.{path}"),
        )
        data["delimiter"] = seps[sep]
        marks = {"auto": "auto", ". (point: 12.5)": ".", ", (comma: 12,5)": ","}
        now = next((k for k, v in marks.items() if v == data.get("decimal", "auto")), "auto")
        shown_dec = {".": "point", ",": "comma"}.get(how.get("decimal") or "")
        dec = c3.selectbox(
            label("data.decimal"),
            list(marks),
            index=list(marks).index(now),
            format_func=lambda k: (
                f"auto (detected: {shown_dec})" if k == "auto" and shown_dec and "decimal" in detected else k
            ),
            key=ui.key(f"data.decimal.{path}"),
            help="European Excel exports write 12,5 and separate fields with ';'",
        )
        data["decimal"] = marks[dec]


def csv_advanced(data: dict, columns: list[str], dates: list[str]) -> None:
    """Time windows (sequence models read the past W rows) and pixel columns as images; edits
    ``data`` in place."""
    window = data.get("window")
    with st.expander("Time series windows, images", expanded=bool(window or data.get("image_shape"))):
        use = st.checkbox(
            "Cut the rows into sliding time windows (for sequence models: LSTM, GRU, 1-D CNN, transformer)",
            value=bool(window),
            key=ui.key("data.window.on"),
        )
        if use:
            current = dict(window or {})
            specs = {f.name: f for f in forms.window_fields()}
            a, b = st.columns([1, 1])
            times = [c for c in columns if c in dates] + [c for c in columns if c not in dates]
            time_col = a.selectbox(
                "Time column (rows are sorted by it)",
                times,
                key=ui.key("data.window.time"),
                index=times.index(current["time_column"]) if current.get("time_column") in times else 0,
            )
            groups = ["(the split column)"] + columns
            group = b.selectbox(
                "Separate series by",
                groups,
                key=ui.key("data.window.group"),
                index=groups.index(current["group_column"]) if current.get("group_column") in groups else 0,
                help=specs["group_column"].description,
            )
            rest = ui.params_form(
                [specs[k] for k in ("length", "stride", "horizon", "include_target")],
                current,
                "data.window",
                columns=4,
            )
            data["window"] = {
                "time_column": time_col,
                **rest,
                "group_column": None if group == groups[0] else group,
            }
        else:
            data["window"] = None
        shape_text = st.text_input(
            "Read the feature columns as an image of shape C, H, W (e.g. 1, 28, 28)",
            value=", ".join(map(str, data.get("image_shape") or [])),
            key=ui.key(f"data.image_shape.{data.get('image_shape')}"),  # a new field when the shape is set
            help=forms.data_field("image_shape").description,
        )
        try:
            shape = [int(v) for v in shape_text.replace("x", ",").split(",") if v.strip()]
            data["image_shape"] = shape or None
        except ValueError:
            st.error("Image shape: write whole numbers separated by commas, e.g. 1, 28, 28")


def file_caption(data: dict, report: dict | None) -> str:
    name = dataset_label(data)
    if not report:
        return f"Using **{name}**"
    fmt = report.get("format", "csv")
    if fmt == "xlsx":
        how = f"Excel workbook, sheet '{report.get('sheet')}'"
    elif fmt == "parquet":
        how = "Parquet"
    else:
        sep = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe"}.get(
            report.get("delimiter") or "", "?"
        )
        how = f"text, {report.get('encoding')}, {sep}-separated, decimal '{report.get('decimal', '.')}'"
    return f"Using **{name}** · {report.get('rows', 0):,} rows · {how}"


# ---- CSV: file, schema, target --------------------------------------------------------------------
report = None
inspection = None
if dataset == "csv":
    st.subheader("File")
    examples = scenarios.example_csvs()
    source = st.radio(
        "Source",
        ["Upload a file", "Use an example file"],
        horizontal=True,
        index=1 if data.get("path") in examples else 0,
        key=ui.key("data.csv_source"),
    )
    fresh = {
        "target": None,
        "task": "auto",
        "columns": {},
        "partition": {"method": "iid"},
        "encoding": "auto",
        "delimiter": None,
        "decimal": "auto",
        "sheet": None,
        "split_column": None,
        "window": None,
        "image_shape": None,
    }
    if source == "Use an example file" and examples:
        path = st.selectbox(
            "Example file",
            examples,
            key=ui.key("data.example"),
            index=examples.index(data["path"]) if data.get("path") in examples else 0,
        )
        if path != data.get("path"):
            data.update({"path": path, **fresh})
            forget_split_widgets()
            commit_table(data)
    else:
        limit = float(st.get_option("server.maxUploadSize") or 200)
        upload = st.file_uploader(
            f"Table file: CSV, Excel .xlsx or Parquet (up to {limit:.0f} MB; first row = column names)",
            type=["csv", "tsv", "txt", "xlsx", "parquet", "pq"],
            key="data.upload",
        )
        if upload is not None and st.session_state.get("_uploaded") != upload.file_id:
            with ui.guard("storing the upload"):
                path = schema.save_upload(
                    upload.name, upload.getvalue(), limit_mb=min(limit, data.get("max_file_mb", 200))
                )
                st.session_state["_uploaded"] = upload.file_id
                data.update({"path": path, **fresh})
                forget_split_widgets()
                commit_table(data)
    if data.get("path"):
        inspection = schema.inspect_page(data)
        report = inspection.report
        st.caption(ui.plain(file_caption(data, report)))
        if inspection.error:
            st.error(ui.plain(inspection.error), icon=":material/error:")
        before_reading = copy.deepcopy(data)
        reading_controls(data, report, expanded=inspection.stage == "read")
        if data != before_reading:
            commit(data, rerun=True)
        if report is not None:
            cols = [c["name"] for c in report.get("columns", [])]
            if data.get("target") and data["target"] not in cols:  # the report lists the features only
                cols.insert(0, data["target"])
            t1, t2, t3 = st.columns([2, 1, 1])
            suggestion = data.get("target") or report.get("target_suggestion")
            target = t1.selectbox(
                f"{label('data.target')}: the column to predict",
                cols,
                index=cols.index(suggestion) if suggestion in cols else None,
                placeholder="choose the column to predict",
                key=ui.key("data.target"),
            )
            task = t2.selectbox(
                label("data.task"),
                ["auto", "classification", "regression"],
                key=ui.key("data.task"),
                index=["auto", "classification", "regression"].index(data.get("task", "auto")),
                help="auto: text, booleans and integers with few values are classes; other numbers "
                "are regression",
            )
            t3.metric("Rows", f"{report.get('rows', 0):,}")
            if (target is not None and target != data.get("target")) or task != data.get("task", "auto"):
                if target is not None:
                    data = schema.set_column_role(data, target, "target")
                data["task"] = task
                commit(data, rerun=True)
            if report.get("task") and not inspection.error:
                st.caption(
                    f"Task: **{report['task']}**"
                    + (
                        f" with classes {', '.join(map(str, report.get('classes', [])[:12]))}"
                        if report.get("classes")
                        else ""
                    )
                    + f" · input `{report.get('input', '?')}`"
                )
            for w in report.get("warnings", []):
                st.caption(f":material/info: {ui.plain(w)}")
            image_offer = images.offer(report, data)
            if image_offer is not None:  # pixel columns read as a table: offer the images
                st.info(ui.plain(image_offer.text), icon=":material/image:")
                if st.button("Read them as images", type="primary", key=ui.key("data.read_images")):
                    commit(images.read_as_images(data, image_offer), rerun=True)
            st.markdown(
                "**Columns** — change a column's *role* (feature, target, split: one client per value, "
                "ignore) or force its *type*."
            )
            before = schema.schema_frame(report, data)
            edited = st.data_editor(
                before,
                hide_index=True,
                width="stretch",
                key=ui.key(f"schema.{document.fingerprint(data)}"),
                disabled=["column", "inferred", "missing", "unique", "examples", "note"],
                column_config={
                    "role": st.column_config.SelectboxColumn(
                        "role",
                        options=list(schema.ROLES),
                        required=True,
                        help="feature: model input; target: what to predict; "
                        "split: one client per value; ignore: not used",
                    ),
                    "type": st.column_config.SelectboxColumn(
                        "type",
                        options=[t for t in COLUMN_TYPES if t != "ignore"],
                        required=True,
                        help="auto keeps the inferred type",
                    ),
                    "missing": st.column_config.NumberColumn(
                        "missing",
                        help="empty cells: filled by each client's "
                        "preprocessing (see Preprocessing statistics below)",
                    ),
                    "note": st.column_config.TextColumn("note", width="large"),
                },
            )
            if not edited.equals(before):
                commit(schema.apply_schema(data, before, edited), rerun=True)
            codes = [c for c in report.get("code_like", []) if c != data.get("target")]
            if codes:
                st.caption(
                    ":material/lightbulb: "
                    + ui.plain(", ".join(f"'{c}'" for c in codes[:8]))
                    + (" hold" if len(codes) > 1 else " holds")
                    + " a few integer values: if they are category "
                    "codes (a type code 1-4, not an amount), make them categorical so the model does not "
                    "read 3 as 'three times 1'."
                )
                buttons = st.columns(min(len(codes), 4))
                for b, c in zip(buttons, codes[:4], strict=False):
                    if b.button(f"Make '{c}' categorical", key=ui.key(f"data.code.{c}")):
                        commit(schema.set_column_role(data, c, "feature", "categorical"), rerun=True)
            csv_advanced(
                data,
                [c for c in cols if c != data.get("target")],
                [c["name"] for c in report.get("columns", []) if c.get("inferred") == "datetime"],
            )

if dataset == "csv" and not data.get("path"):
    st.info(
        "Upload a file (CSV, Excel or Parquet), or pick an example file, to see its columns, choose the "
        "target and split it.",
        icon=":material/upload_file:",
    )
    st.stop()
if dataset == "csv" and report is None:
    st.stop()  # the file cannot be read as set: the reading controls above are what fixes it
blocked = inspection is not None and inspection.error is not None
if not blocked and (info.get("kind") == "image" or data.get("image_shape")):
    with ui.guard("showing example images"):
        shown = images.examples(data)
        if shown:
            st.markdown("**Example images** as the models read them")
            st.image([a for _, a in shown], caption=[ui.plain(c) for c, _ in shown])
            hint = images.model_hint(design)
            if hint:
                st.caption(f":material/lightbulb: {ui.plain(hint)}")

# ---- split ----------------------------------------------------------------------------------------
st.subheader("Split across clients")
partitioners = choices.partitioners()
methods = list(partitioners)
part = dict(data.get("partition") or {"method": "iid"})
s1, s2 = st.columns([1, 2])
method = s1.selectbox(
    label("data.partition.method"),
    methods,
    index=methods.index(part.get("method", "iid")) if part.get("method", "iid") in methods else 0,
    key=ui.key("data.partition"),
)
s2.markdown(partitioners.get(method, {}).get("description", ""))
if method != part.get("method"):
    part = {"method": method}
specs = forms.partition_fields(method)
summary = None
if not blocked:
    with ui.guard("loading the dataset"):
        summary = schema.dataset_summary(data)
params: dict = {}
if method == "natural":
    side = list((summary or {}).get("columns") or [])
    if report is not None:  # a CSV: any column with a few repeated values can be the split
        side = list(dict.fromkeys([*side, *report.get("natural_candidates", [])]))
    col_spec = next((s for s in specs if s.name == "column"), None)
    if col_spec is not None:
        options = side or ([part["column"]] if part.get("column") else [])
        if options:
            chosen = st.selectbox(
                f"{label('data.partition.column')} (one client per value)",
                options,
                key=ui.key("data.natural_col"),
                index=options.index(part["column"]) if part.get("column") in options else 0,
                help=col_spec.description,
            )
            params["column"] = chosen
        else:
            st.info(
                "This dataset has no column to split by; mark a CSV column as *split* above, or choose "
                "another method."
            )
        specs = [s for s in specs if s.name != "column"]
params.update(ui.params_form(specs, part, f"data.partition.{method}"))
part = {"method": method, **params}
data["partition"] = part

if report is not None:  # a user's file: its own train/test column, if it has one
    found = list(report.get("split_candidates") or [])
    current = data.get("split_column")
    if found or current:
        # "" stands for none: a None option is drawn as the empty placeholder after some reruns
        options = ["", *dict.fromkeys([*([current] if current else []), *found])]
        chosen = (
            st.selectbox(
                label("data.split_column"),
                options,
                index=options.index(current or ""),
                format_func=lambda c: (
                    f"'{c}' (the file's train / test / validation rows)"
                    if c
                    else "none: draw the test sets at random"
                ),
                key=ui.key("data.split_column"),
                help=forms.data_field("split_column").description,
            )
            or None
        )
        if chosen != current:
            data = schema.set_column_role(data, chosen, "feature") if chosen else data
            data["split_column"] = chosen
        if found and not current:
            st.caption(
                f":material/lightbulb: '{ui.plain(found[0])}' says which rows are train and which are test: "
                "choose it above to use the file's own split (its test rows become the clients' test splits "
                "and, together, the global test set)."
            )

stat_keys = list(schema.STATISTICS)
now_stat = data.get("statistics", "federated")
stat = st.radio(
    label("data.statistics"),
    stat_keys,
    index=stat_keys.index(now_stat) if now_stat in stat_keys else 0,
    format_func=schema.STATISTICS.get,
    horizontal=True,
    key=ui.key("data.statistics"),
    help="Where the values that fill missing cells, scale features and list categories come from. "
    "Federated: each site shares sums and counts of its training rows, the server adds them up; "
    "no row leaves a site, every site uses the same values. Own data: nothing is shared, but a "
    "column constant or mostly missing at a site scales very differently there. Centralized: the "
    "whole file, test rows included - what no real federation can compute; for reference only.",
)
data["statistics"] = stat
methods: dict[str, int] = {}
for row in roster.expanded_rows(design):
    methods[row.get("preprocessing") or "none"] = methods.get(row.get("preprocessing") or "none", 0) + 1
st.caption(
    "The clients' preprocessing: "
    + ", ".join(f"{m} ×{n}" for m, n in methods.items())
    + " (missing values are filled whatever the method; change it per client on the Clients page)."
)
if stat == "centralized":
    st.warning(
        "Centralized statistics: not possible in a real federation. Every site's preprocessing uses the "
        "whole file, test rows included; use it only as a reference.",
        icon=":material/warning:",
    )

rows = roster.expanded_rows(design)
n_clients = len(rows)
c1, c2 = st.columns([1, 3])
if method == "natural":
    names = None
    if not blocked:
        with ui.guard("reading the split column"):
            if part.get("column"):
                names = schema.natural_names(data)
    if names is not None:
        c1.metric("Clients (one per value)", len(names))
        if len(names) != n_clients:
            c2.warning(
                f"The split makes **{len(names)}** clients "
                f"({', '.join(names[:8])}{' ...' if len(names) > 8 else ''}) "
                f"but the roster has **{n_clients}**."
            )
            if c2.button(
                f"Make the roster {len(names)} clients named after them",
                key="data.fit_roster",
                type="primary",
            ):
                d = roster.resize_roster(ui.design(), len(names), names)
                commit(data, rerun=True, new_design=d)
else:
    n_new = c1.number_input(
        "Clients",
        min_value=1,
        max_value=10_000,
        value=max(1, n_clients),
        step=1,
        key=ui.key("data.n_clients"),
        help="the roster size; new clients copy the last one (edit them on the Clients page)",
    )
    if int(n_new) != n_clients:
        commit(data, rerun=True, new_design=roster.resize_roster(ui.design(), int(n_new)))

with st.expander("Held-out sets and sampling"):
    held = ui.params_form(forms.held_out_fields(), data, "data.heldout", columns=4)
    for k in forms.HELD_OUT:
        data[k] = held.get(k)
    if data.get("split_column"):
        st.caption("The file's train/test column decides every test row: the test fractions are not used.")
    st.caption(
        "Each client keeps *test fraction* of its data to test its own model; the *global test* set "
        "is held out before splitting and scores every model on the same data; the *public* set is "
        "an unlabelled pool that knowledge-sharing strategies (FedMD, FedDF) exchange predictions on."
    )

if data != design.get("data"):
    commit(data)
    design = ui.design()

# ---- preview --------------------------------------------------------------------------------------
st.subheader("Preview")
if blocked:
    st.info("The preview appears once the problem shown above is fixed.", icon=":material/info:")
    st.stop()


@st.cache_data(show_spinner=False, max_entries=64)
def _preview(fp: str, _design: dict) -> dict:
    return split.preview(_design)


@st.cache_resource(show_spinner=False, max_entries=16)
def preview_figures(fp: str, _prev: dict) -> tuple:
    """The preview's charts (sizes, labels per client, missing values), built once per split: plotly
    express took ~0.15 s a heatmap, paid by every rerun of the page. Shared read-only."""
    prev, clients = _prev, _prev["clients"]
    regression = prev["task"] == "regression"
    names = [c["name"] for c in clients]
    bars = [go.Bar(name="train", x=names, y=[c["train"] for c in clients], marker_color="#2563eb")]
    if any(c.get("validation") for c in clients):
        bars.append(
            go.Bar(
                name="validation",
                x=names,
                y=[c.get("validation", 0) for c in clients],
                marker_color="#93c5fd",
            )
        )
    bars.append(go.Bar(name="local test", x=names, y=[c["test"] for c in clients], marker_color="#9ca3af"))
    fig = go.Figure(bars)
    fig.update_layout(
        barmode="stack",
        title="Samples per client",
        height=360,
        margin={"t": 40, "b": 10},
        legend={"orientation": "h", "y": 1.02, "x": 1, "xanchor": "right", "yanchor": "bottom"},
        xaxis_title=None,
        yaxis_title="samples",
    )
    heat = px.imshow(
        prev["histogram"],
        x=[str(b) for b in prev["bins"]],
        y=names,
        aspect="auto",
        color_continuous_scale="Blues",
        zmin=0,
        labels={"x": "target range (deciles)" if regression else "class", "y": "client", "color": "samples"},
    )
    if len(names) <= 30:  # each cell: its count and its share of the client's samples
        cells = [[f"{n} ({100 * n / max(sum(row), 1):.0f}%)" for n in row] for row in prev["histogram"]]
        heat.update_traces(text=cells, texttemplate="%{text}")
    heat.update_layout(
        title="Target distribution per client" if regression else "Clients × classes",
        height=360,
        margin={"t": 40, "b": 10},
    )
    mh = None
    miss = prev.get("missingness") or {}
    if miss.get("columns"):
        share = [[100 * v for v in row] for row in miss["share"]]
        mh = px.imshow(
            share,
            x=miss["columns"],
            y=names,
            aspect="auto",
            color_continuous_scale="Reds",
            zmin=0,
            zmax=100,
            text_auto=".0f" if len(names) * len(miss["columns"]) <= 400 else False,
            labels={"x": "column", "y": "client", "color": "% missing"},
        )
        mh.update_layout(
            title="Missing values per client and column (%)",
            height=120 + 28 * len(names),
            margin={"t": 40, "b": 10},
        )
    return fig, heat, mh


prev = None
with ui.guard("previewing the split"):
    fingerprint = document.fingerprint(
        {"data": design.get("data"), "clients": design.get("clients"), "seed": design.get("seed")}
    )
    prev = _preview(fingerprint, design)
if prev is not None:
    clients = prev["clients"]
    sizes = [c["size"] for c in clients]
    skew = prev.get("label_skew") or {}
    m = st.columns(5)
    m[0].metric("Clients", len(clients))
    m[1].metric("Training samples", f"{sum(c['train'] for c in clients):,}")
    m[2].metric(
        "Global test",
        f"{prev['global_test']:,}",
        help="the file's test rows" if prev.get("split_from_file") else "held out before the split",
    )
    m[3].metric("Client size min / max", f"{min(sizes)} / {max(sizes)}")
    m[4].metric(
        "Label skew",
        f"{skew.get('max_points', 0):.0f} points",
        help="How far the most unusual client's label mix is from the whole federation's, in percentage "
        "points: the share of its samples that would have to change label for it to look like the "
        "federation (total variation distance). With two classes it is the gap in the positive rate: "
        "a site 94% positive in a federation 61% positive is 33 points away. 0 = every client has "
        "the same mix; above ~20 = strong label skew.",
    )
    st.caption(
        f"Dataset `{prev['dataset']}` · task **{prev['task']}** · input `{prev['input']}`"
        + (f" · public set {prev['public']:,}" if prev.get("public") else "")
        + (f" · most unusual label mix: {ui.plain(prev['label_skew_text'])}" if skew.get("client") else "")
    )
    left, right = st.columns(2)
    fig, heat, mh = preview_figures(fingerprint, prev)
    left.plotly_chart(fig, key="prev.sizes")
    right.plotly_chart(heat, key="prev.heatmap")

    miss = prev.get("missingness") or {}
    if miss.get("columns"):
        st.plotly_chart(mh, key="prev.missing")
        how = {
            "federated": (
                "the federation's aggregate of the clients' training data (sums and counts each site shares)"
            ),
            "client": "each client's own training data",
            "centralized": "the whole file (centralized statistics: not possible in a real federation)",
        }
        st.caption(
            "Missing values are filled by each client's preprocessing, with "
            f"{how[data.get('statistics', 'federated')]}."
        )
        for flag in miss.get("mostly_missing", [])[:12]:
            st.warning(
                ui.plain(
                    f"'{flag['column']}' is {100 * flag['share']:.0f}% missing at {flag['client']}: what "
                    f"that site's model sees of it is mostly the fill value. Consider leaving the column "
                    f"out (role *ignore*) if it matters little elsewhere."
                ),
                icon=":material/warning:",
            )
    for i, code in enumerate((prev.get("codes") or [])[:8]):
        value = code["value"]
        shown = int(value) if float(value).is_integer() else value
        st.warning(
            ui.plain(
                f"'{code['column']}' is **{shown}** in {100 * code['share']:.0f}% of {code['client']}'s "
                f"rows, a value the other sites never use, outside their range "
                f"({code['others_low']:.4g} to {code['others_high']:.4g}): probably that site's code "
                f"for *missing*."
            ),
            icon=":material/help:",
        )
        if st.button(f"Treat {shown} in '{code['column']}' as missing", key=ui.key(f"data.code_missing.{i}")):
            commit(schema.treat_as_missing(data, code["column"], shown), rerun=True)
    if prev.get("report"):
        with st.expander("What loading found"):
            st.json(prev["report"], expanded=False)
    if len(clients) != n_clients and method == "natural":
        st.caption("The preview shows one client per value of the split column.")

st.divider()
nav1, nav2 = st.columns([1, 1])
if nav2.button("Next: clients →", type="primary", key="data.next", width="stretch"):
    ui.goto("clients")
