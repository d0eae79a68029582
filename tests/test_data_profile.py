"""What the Data page says about a federation: missingness per site, mostly-missing columns,
site-specific missing-value codes, label skew in percentage points, and errors in the page's words."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engine.data import DataConfig, partition_preview
from engine.data.datasets.clinical import messy_clinical_frame, write_messy_clinical_csv
from engine.data.profile import label_skew, skew_sentence
from engine.design import schema
from engine.labels import dataset_label, for_page


def test_label_skew_reads_as_points_a_clinician_can_check():
    # one site 94% positive, the others near 50%: the pooled rate is 61%, that site 33 points away
    hist = np.array([[6, 94], [50, 50], [55, 45], [45, 55]])
    skew = label_skew(hist, ["no", "yes"], ["A", "B", "C", "D"])
    overall = 244 / 400
    assert skew["client"] == "A" and skew["class"] in ("yes", "no")
    assert skew["max_points"] == pytest.approx(100 * (0.94 - overall), abs=0.05)
    assert skew_sentence(skew).startswith("A: 94% 'yes' against 61% overall")
    low = label_skew(np.array([[90, 10], [40, 60]]), ["no", "yes"], ["A", "B"])
    assert low["client"] in ("A", "B") and low["class"] == ("no" if low["client"] == "A" else "yes")
    assert label_skew(np.array([[10, 10], [5, 5]]), ["a", "b"], ["x", "y"])["max_points"] == 0


def test_preview_of_the_messy_file_flags_each_defect(tmp_path):
    path = write_messy_clinical_csv(tmp_path / "clinical.csv")
    conf = DataConfig(
        dataset="csv", path=str(path), target="outcome", partition={"method": "natural", "column": "hospital"}
    )
    prev = partition_preview(conf, None, None, 0, tmp_path, profile_sites=True)
    mostly = {(f["column"], f["client"]) for f in prev["missingness"]["mostly_missing"]}
    assert mostly == {("creatinine", "Northfield"), ("bmi", "Mercy"), ("hba1c", "Eastbrook")}
    codes = {(c["column"], c["value"], c["client"]) for c in prev["codes"]}
    assert codes == {("cholesterol", 0.0, "Westgate"), ("triglycerides", 0.0, "Mercy")}
    assert prev["label_skew"]["client"] == "Eastbrook" and prev["label_skew"]["max_points"] > 35
    share = dict(
        zip(prev["missingness"]["columns"], np.array(prev["missingness"]["share"]).T.tolist(), strict=True)
    )
    names = [c["name"] for c in prev["clients"]]
    assert share["creatinine"][names.index("Northfield")] == pytest.approx(0.66, abs=0.05)
    assert "admission_type" in prev["report"]["code_like"]
    # a legitimately different site (older patients) is not a missing-value code
    frame = messy_clinical_frame()
    assert frame.loc[frame["hospital"] == "Eastbrook", "age"].mean() > frame["age"].mean() + 5
    assert not any(c["column"] == "age" for c in prev["codes"])


def test_errors_speak_the_pages_words():
    msg = "line 2 is not valid utf-8 text; set data.encoding to cp1252 (or auto); or data.delimiter"
    shown = for_page(msg)
    assert shown == (
        "line 2 is not valid utf-8 text; set **Text encoding** (Data > File > Reading the file) "
        "to cp1252 (or auto); or **Separator**"
    )
    assert (
        for_page("set data.public_fraction above 0")
        == "set **Public fraction** (Data > Held-out sets and sampling) above 0"
    )
    assert for_page("metadata.encoding stays") == "metadata.encoding stays"
    assert dataset_label({"dataset": "csv", "path": "uploads/Hospital_2024.xlsx"}) == "Hospital_2024.xlsx"
    assert dataset_label({"dataset": "digits"}) == "digits"


def test_inspect_page_keeps_what_it_can(tmp_path, monkeypatch):
    monkeypatch.setenv("FEDMOSAIC_HOME", str(tmp_path))
    good = tmp_path / "ok.csv"
    good.write_text("a,b,y\n" + "".join(f"{i},{i % 3},{'km'[i % 2]}\n" for i in range(30)))
    assert schema.inspect_page({"dataset": "csv", "path": str(good), "target": "y"}).error is None
    one = schema.inspect_page(
        {
            "dataset": "csv",
            "path": str(good),
            "target": "b",
            "task": "classification",
            "columns": {"a": {"type": "categorical"}},
        }
    )
    assert one.error is None
    bad_target = schema.inspect_page(
        {"dataset": "csv", "path": str(good), "target": "y", "task": "regression"}
    )
    assert bad_target.stage == "target" and bad_target.report is not None and "**Task**" in bad_target.error
    bad_sep = schema.inspect_page({"dataset": "csv", "path": str(good), "target": "y", "delimiter": ";"})
    assert bad_sep.stage == "read" and bad_sep.report is None and "**Separator**" in bad_sep.error
    mixed = tmp_path / "mixed.csv"
    mixed.write_text(
        "a,b,y\n" + "".join(f"{i % 7},{'x' if i == 4 else i},{'km'[i % 2]}\n" for i in range(30))
    )
    cols = schema.inspect_page({"dataset": "csv", "path": str(mixed), "target": "y"})
    assert cols.stage == "columns" and "the Columns table" in cols.error and cols.report is not None
    assert Path(mixed).exists()
