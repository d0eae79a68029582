"""Data page (AppTest): the preview reacts to the partition, a CSV upload with its schema, target
and a natural split sized from the file, and friendly errors for impossible splits."""

from __future__ import annotations

import os
from pathlib import Path

from streamlit.testing.v1 import AppTest

from tests.test_app_support import app, assert_clean, routed_apptest  # noqa: F401 - the fixture applies here

ROOT = Path(__file__).resolve().parent.parent


def metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def widget_key(at: AppTest, kind: str, prefix: str) -> str:
    return next(w.key for w in getattr(at, kind) if w.key and w.key.startswith(prefix))


def test_preview_follows_the_partition() -> None:
    at = app("data")
    assert_clean(at)
    assert metric(at, "Clients") == "8"
    mild = float(metric(at, "Heterogeneity"))
    at.number_input(key=widget_key(at, "number_input", "data.partition.dirichlet.alpha")).set_value(0.05).run()
    assert_clean(at)
    assert at.session_state["design"]["data"]["partition"]["alpha"] == 0.05
    assert float(metric(at, "Heterogeneity")) > mild + 0.2  # stronger label skew, visibly
    at.selectbox(key=widget_key(at, "selectbox", "data.partition@")).set_value("iid").run()
    assert float(metric(at, "Heterogeneity")) < mild
    at.number_input(key=widget_key(at, "number_input", "data.n_clients")).set_value(3).run()
    assert_clean(at)
    assert metric(at, "Clients") == "3"
    assert sum(int(c.get("count", 1)) for c in at.session_state["design"]["clients"]) == 3
    assert len(at.get("plotly_chart")) == 2  # sizes and the clients x classes heatmap


def test_csv_upload_schema_target_and_natural_split() -> None:
    at = app("data")
    at.selectbox(key=widget_key(at, "selectbox", "data.dataset")).set_value("csv").run()
    assert_clean(at)
    content = (ROOT / "examples" / "data" / "hospital.csv").read_bytes()
    at.file_uploader(key="data.upload").upload("Hospital records (2024).csv", content, "text/csv").run()
    assert_clean(at)
    data = at.session_state["design"]["data"]
    assert data["path"] == "uploads/Hospital_records_2024_.csv"
    stored = Path(os.environ["FEDMOSAIC_HOME"]) / data["path"]
    assert stored.read_bytes() == content
    schema = at.data_editor[0].value.set_index("column")
    assert schema.loc["patient_id", "role"] == "ignore" and schema.loc["admitted", "inferred"] == "datetime"

    at.selectbox(key=widget_key(at, "selectbox", "data.target")).set_value("readmitted").run()
    assert_clean(at)
    assert at.session_state["design"]["data"]["target"] == "readmitted"
    assert any("classification" in c.value for c in at.caption)

    at.selectbox(key=widget_key(at, "selectbox", "data.partition@")).set_value("natural").run()
    at.selectbox(key=widget_key(at, "selectbox", "data.natural_col")).set_value("hospital").run()
    assert any("makes **5** clients" in w.value for w in at.warning)
    at.button(key="data.fit_roster").click().run()
    assert_clean(at)
    names = [c["name"] for c in at.session_state["design"]["clients"]]
    assert names == ["Hillcrest", "Lakeview", "Northgate", "Riverside", "St Olaf"]
    assert metric(at, "Clients") == "5"

    # the schema table edits the data section: ignore a column
    editor = at.data_editor[0]
    row = list(editor.value["column"]).index("ward")
    at.session_state[editor.key] = {"edited_rows": {str(row): {"role": "ignore"}}, "added_rows": [], "deleted_rows": []}
    at.run()
    assert_clean(at)
    assert at.session_state["design"]["data"]["columns"]["ward"] == {"type": "ignore"}


def test_impossible_split_is_a_friendly_error() -> None:
    at = app("data")
    at.number_input(key=widget_key(at, "number_input", "data.partition.dirichlet.min_size")).set_value(500).run()
    assert not at.exception
    errors = [e.value for e in at.error]
    assert errors and "min_size" in errors[0] and "Traceback" not in errors[0]


def test_data_page_with_traffic_options() -> None:
    at = app()
    at.button(key="tmpl-traffic_volume").click().run()
    assert_clean(at)
    assert at.session_state["design"]["data"]["options"]["target"] == "volume"
    assert any("target range" in str(c.proto.spec) for c in at.get("plotly_chart"))  # regression histograms
    days = widget_key(at, "number_input", "data.options.traffic.days")
    at.number_input(key=days).set_value(14).run()
    assert_clean(at)
    assert at.session_state["design"]["data"]["options"]["days"] == 14


def test_csv_time_windows_make_sequences() -> None:
    at = app("data", template="hospital_records")
    assert_clean(at)
    at.checkbox(key=widget_key(at, "checkbox", "data.window.on")).check().run()
    at.selectbox(key=widget_key(at, "selectbox", "data.window.time")).set_value("admitted").run()
    at.number_input(key=widget_key(at, "number_input", "data.window.length")).set_value(4).run()
    assert_clean(at)
    window = at.session_state["design"]["data"]["window"]
    assert window["time_column"] == "admitted" and window["length"] == 4 and window["group_column"] is None
    assert any("sequence 4x" in c.value for c in at.caption)  # sequence input, 4 rows per sample
