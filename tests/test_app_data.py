"""Data page (AppTest): the preview reacts to the partition, a CSV upload with its schema, target
and a natural split sized from the file, and friendly errors for impossible splits."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from streamlit.testing.v1 import AppTest

from tests.test_app_support import app, assert_clean

ROOT = Path(__file__).resolve().parent.parent


def metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def skew_points(at: AppTest) -> float:
    return float(metric(at, "Label skew").split()[0])


def widget_key(at: AppTest, kind: str, prefix: str) -> str:
    return next(w.key for w in getattr(at, kind) if w.key and w.key.startswith(prefix))


def test_preview_follows_the_partition() -> None:
    at = app("data")
    assert_clean(at)
    assert metric(at, "Clients") == "8"
    mild = skew_points(at)
    at.number_input(key=widget_key(at, "number_input", "data.partition.dirichlet.alpha")).set_value(
        0.05
    ).run()
    assert_clean(at)
    assert at.session_state["design"]["data"]["partition"]["alpha"] == 0.05
    assert skew_points(at) > mild + 20  # stronger label skew, visibly (percentage points)
    at.selectbox(key=widget_key(at, "selectbox", "data.partition@")).set_value("iid").run()
    assert skew_points(at) < mild
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
    assert data["path"] == "uploads/Hospital records (2024).csv"  # shown as the user named it
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
    at.session_state[editor.key] = {
        "edited_rows": {str(row): {"role": "ignore"}},
        "added_rows": [],
        "deleted_rows": [],
    }
    at.run()
    assert_clean(at)
    assert at.session_state["design"]["data"]["columns"]["ward"] == {"type": "ignore"}


def test_impossible_split_is_a_friendly_error() -> None:
    at = app("data")
    at.number_input(key=widget_key(at, "number_input", "data.partition.dirichlet.min_size")).set_value(
        500
    ).run()
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


# ---- the page never dead-ends --------------------------------------------------------------------


def upload(at: AppTest, name: str, content: bytes) -> AppTest:
    at.selectbox(key=widget_key(at, "selectbox", "data.dataset")).set_value("csv").run()
    at.file_uploader(key="data.upload").upload(name, content, "application/octet-stream").run()
    return at


def controls(at: AppTest) -> set[str]:
    return {w.label.split(":")[0] for w in [*at.selectbox, *at.radio] if w.label}


def test_one_class_target_keeps_every_control_and_says_it_once() -> None:
    text = "age,sex,outcome\n" + "".join(f"{20 + i},{'MF'[i % 2]},yes\n" for i in range(30))
    at = upload(app("data"), "one class.csv", text.encode())
    at.selectbox(key=widget_key(at, "selectbox", "data.target")).set_value("outcome").run()
    assert not at.exception
    errors = [e.value.replace("\\", "") for e in at.error]  # as rendered: Markdown escapes removed
    assert len(errors) == 1 and "single class" in errors[0]
    assert "**Target** (Data > File)" in errors[0] and "**Task**" in errors[0] and "data." not in errors[0]
    assert {"Target", "Task", "Text encoding", "Separator", "Decimal mark"} <= controls(at)
    assert len(at.data_editor) == 1  # the column table
    assert "choose another **Target**" in errors[0]
    at.selectbox(key=widget_key(at, "selectbox", "data.target")).set_value("age").run()
    assert_clean(at)  # fixed from the page: another target
    assert at.session_state["design"]["data"]["partition"] == {"method": "iid"}


def test_european_latin1_export_reads_numbers_and_offers_the_site_column() -> None:
    rows = ["site;âge;poids;créatinine;issue"]
    for i in range(60):
        rows.append(
            f"{['Besançon', 'Nîmes', 'Sète'][i % 3]};{30 + (i * 7) % 45};{60 + i % 17},5;"
            f"{0.7 + (i % 9) / 10:.2f};{'oui' if i % 2 else 'non'}".replace("0.", "0,").replace("1.", "1,")
        )
    at = upload(app("data"), "export (2024).csv", ("\n".join(rows) + "\n").encode("cp1252"))
    assert_clean(at)
    data = at.session_state["design"]["data"]
    assert data["path"] == "uploads/export (2024).csv"
    schema = at.data_editor[0].value.set_index("column")
    assert schema.loc["poids", "inferred"] == "numeric" and schema.loc["créatinine", "inferred"] == "numeric"
    assert any(
        "cp1252" in c.value and "semicolon" in c.value and "decimal ','" in c.value for c in at.caption
    )
    at.selectbox(key=widget_key(at, "selectbox", "data.target")).set_value("issue").run()
    at.selectbox(key=widget_key(at, "selectbox", "data.partition@")).set_value("natural").run()
    assert_clean(at)
    assert (
        at.selectbox(key=widget_key(at, "selectbox", "data.natural_col")).value == "site"
    )  # not a number column


def test_wrong_separator_names_the_control_and_keeps_it() -> None:
    text = "a;b;y\n" + "".join(f"{i};{i % 3};{'km'[i % 2]}\n" for i in range(60))
    at = upload(app("data"), "semi.csv", text.encode())
    at.selectbox(key=widget_key(at, "selectbox", "data.delimiter")).set_value(", (comma)").run()
    assert not at.exception
    errors = [e.value.replace("\\", "") for e in at.error]
    assert len(errors) == 1 and "**Separator**" in errors[0] and "data.delimiter" not in errors[0]
    assert {"Text encoding", "Separator"} <= controls(at)
    at.selectbox(key=widget_key(at, "selectbox", "data.delimiter")).set_value("auto").run()
    assert_clean(at)


def test_stray_empty_column_and_xlsx_upload(tmp_path: Path) -> None:
    import pandas as pd

    frame = pd.DataFrame(
        {"age": range(40), "ward": ["a", "b"] * 20, "empty": [None] * 40, "y": ["k", "m"] * 20}
    )
    frame.to_excel(tmp_path / "book.xlsx", index=False)
    at = upload(app("data"), "book.xlsx", (tmp_path / "book.xlsx").read_bytes())
    at.selectbox(key=widget_key(at, "selectbox", "data.target")).set_value("y").run()
    assert_clean(at)
    schema = at.data_editor[0].value.set_index("column")
    assert schema.loc["empty", "role"] == "ignore" and "empty" in schema.loc["empty", "note"]
    assert any("Excel workbook" in c.value for c in at.caption)


def test_messy_multi_site_file_shows_missingness_and_codes(tmp_path: Path) -> None:
    from engine.data.datasets.clinical import write_messy_clinical_csv

    content = write_messy_clinical_csv(tmp_path / "clinical.csv").read_bytes()
    at = upload(app("data"), "clinical.csv", content)
    at.selectbox(key=widget_key(at, "selectbox", "data.target")).set_value("outcome").run()
    at.selectbox(key=widget_key(at, "selectbox", "data.partition@")).set_value("natural").run()
    at.selectbox(key=widget_key(at, "selectbox", "data.natural_col")).set_value("hospital").run()
    at.button(key="data.fit_roster").click().run()
    assert_clean(at)
    assert at.radio(key=widget_key(at, "radio", "data.statistics")).value == "federated"
    assert len(at.get("plotly_chart")) == 3  # sizes, clients x classes, missingness
    warnings = " ".join(w.value for w in at.warning)
    assert "'creatinine' is 6" in warnings and "missing at Northfield" in warnings
    assert "'cholesterol' is **0** in 100% of Westgate's rows" in warnings
    assert float(metric(at, "Label skew").split()[0]) > 35  # Eastbrook: ~94% positive
    assert any(
        "Eastbrook: 9" in c.value and "'yes'" in c.value for c in at.caption
    )  # its over-represented class
    assert any("admission_type" in c.value and "categorical" in c.value for c in at.caption)
    button = next(b for b in at.button if b.label == "Treat 0 in 'cholesterol' as missing")
    button.click().run()
    assert_clean(at)
    assert at.session_state["design"]["data"]["columns"]["cholesterol"]["missing_values"] == [0]
    assert "'cholesterol' is **0**" not in " ".join(w.value for w in at.warning)


def test_a_table_gets_standardised_clients_unless_someone_chose() -> None:
    at = app("data")
    assert {c.get("preprocessing", "none") for c in at.session_state["design"]["clients"]} == {"none"}
    content = (ROOT / "examples" / "data" / "hospital.csv").read_bytes()
    at = upload(at, "hospital.csv", content)
    assert {c["preprocessing"] for c in at.session_state["design"]["clients"]} == {"standardize"}
    assert any("preprocessing: standardize ×8" in c.value for c in at.caption)  # the 8 quick-start clients


def test_pixel_columns_are_offered_as_images_and_read_so() -> None:
    rng = np.random.default_rng(0)
    n = 80
    header = "label,client," + ",".join(f"px{i}" for i in range(144))
    rows = [f"{i % 4},{'ab'[i % 2]}," + ",".join(map(str, rng.integers(0, 256, 144))) for i in range(n)]
    at = upload(app("data"), "digits 12px.csv", ("\n".join([header, *rows]) + "\n").encode())
    assert_clean(at)
    offers = [i.value for i in at.info if "look like" in i.value]
    assert len(offers) == 1 and "144 columns look like 12×12 grayscale images" in offers[0]
    assert "'client' is not a pixel column" in offers[0]
    assert not at.image  # read as a table: no images yet
    at.button(key=widget_key(at, "button", "data.read_images")).click().run()
    assert_clean(at)
    data = at.session_state["design"]["data"]
    assert data["image_shape"] == [1, 12, 12] and data["columns"]["client"] == {"type": "ignore"}
    assert not [i for i in at.info if "look like" in i.value]  # the offer is gone once accepted
    assert any("image 1x12x12" in c.value for c in at.caption)
    assert at.text_input(key=widget_key(at, "text_input", "data.image_shape")).value == "1, 12, 12"
    assert at.image[0].captions[:5] == ["0", "1", "2", "3", "0"]  # example images: each class first
    assert any("reads each image as one flat row" in c.value for c in at.caption)  # all-mlp roster
    natural = at.selectbox(key=widget_key(at, "selectbox", "data.partition@"))
    natural.set_value("natural").run()
    assert "client" in at.selectbox(key=widget_key(at, "selectbox", "data.natural_col")).options


def test_a_files_train_test_column_is_offered_chosen_and_dropped() -> None:
    rng = np.random.default_rng(0)
    rows = "".join(
        f"{a:.2f},{b:.2f},{'yes' if a + b > 1 else 'no'},{'test' if i % 4 == 0 else 'train'}\n"
        for i, (a, b) in enumerate(rng.random((80, 2)))
    )
    at = upload(app("data"), "with split.csv", ("a,b,outcome,split\n" + rows).encode())
    at.selectbox(key=widget_key(at, "selectbox", "data.target")).set_value("outcome").run()
    assert_clean(at)
    box = lambda: at.selectbox(key=widget_key(at, "selectbox", "data.split_column"))  # noqa: E731
    assert box().value == "" and box().options[0] == "none: draw the test sets at random"
    assert any("'split' says which rows are train" in c.value for c in at.caption)
    box().set_value("split").run()
    assert_clean(at)
    assert at.session_state["design"]["data"]["split_column"] == "split"
    assert box().value == "split"
    box().set_value("").run()  # back to none: stored as no column, not as an empty name
    assert_clean(at)
    assert at.session_state["design"]["data"]["split_column"] is None
