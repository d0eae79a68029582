"""Reading the files users bring: encodings, separators and decimal commas detected (and
overridable), Excel .xlsx and Parquet, missing-value codes, integer codes flagged as possible
categories, and a wide file read in one pass over its numbers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from engine.data import DataConfig, inspect_csv, load_dataset
from engine.data.tables.reading import detect_encoding, read_table
from engine.errors import DataError


def european_csv() -> str:
    """A French Excel export: ';' separated, decimal commas, accented text, a site column."""
    rng = np.random.default_rng(0)
    rows = ["hôpital;âge;température;poids;issue"]
    for i in range(40):
        site = ["Besançon", "Nîmes", "Sète"][i % 3]
        rows.append(
            f"{site};{30 + (i * 7) % 45};{37 + rng.random():.1f}".replace(".", ",")
            + f";{60 + i * 0.5:.1f}".replace(".", ",")
            + f";{'oui' if i % 2 else 'non'}"
        )
    return "\n".join(rows) + "\n"


def test_european_excel_export_reads_numbers_as_numbers(tmp_path):
    path = tmp_path / "export.csv"
    path.write_bytes(european_csv().encode("cp1252"))
    report = inspect_csv(path)
    assert (report["encoding"], report["delimiter"], report["decimal"]) == ("cp1252", ";", ",")
    assert {"encoding", "delimiter", "decimal"} <= set(report["detected"])
    types = {c["name"]: c["type"] for c in report["columns"]}
    assert types["température"] == "numeric" and types["poids"] == "numeric" and types["âge"] == "numeric"
    assert report["natural_candidates"] == ["hôpital", "issue"]  # no number column read as text
    data = load_dataset(DataConfig(dataset="csv", path=str(path), target="issue"), tmp_path)
    weight = data.x[:, data.feature_names.index("poids")].numpy()
    assert weight[:3].tolist() == pytest.approx([60.0, 60.5, 61.0])
    # each detection can be overridden; a wrong decimal mark leaves the numbers as text
    as_dot = inspect_csv(path, {"decimal": "."})
    assert {c["name"]: c["type"] for c in as_dot["columns"]}["poids"] != "numeric"


def test_encoding_detection_prefers_utf8_then_the_western_default():
    text = "ville,valeur\nZürich,1\nSète,2\nKøbenhavn,3\n"
    assert detect_encoding(text.encode("utf-8")) == "utf-8"
    assert detect_encoding(text.encode("utf-8-sig")) == "utf-8-sig"
    assert detect_encoding(text.encode("latin-1")) == "cp1252"
    russian = "город,значение\n" + "".join(f"Москва,{i}\nКазань,{i}\nНовосибирск,{i}\n" for i in range(20))
    assert detect_encoding(russian.encode("cp1251")) == "cp1251"


def test_xlsx_and_parquet_load_like_the_csv(tmp_path):
    rng = np.random.default_rng(1)
    frame = pd.DataFrame(
        {
            "site": rng.choice(["a", "b"], 30),
            "age": rng.integers(20, 80, 30),
            "bmi": rng.normal(25, 3, 30).round(1),
            "when": pd.date_range("2024-01-01", periods=30),
            "y": ["yes", "no"] * 15,
        }
    )
    frame.loc[3, "bmi"] = np.nan
    frame.to_excel(tmp_path / "data.xlsx", index=False, sheet_name="patients")
    frame.to_parquet(tmp_path / "data.parquet", index=False)
    frame.to_csv(tmp_path / "data.csv", index=False)
    loaded = {}
    for name in ("data.csv", "data.xlsx", "data.parquet"):
        data = load_dataset(DataConfig(dataset="csv", path=str(tmp_path / name), target="y"), tmp_path)
        loaded[name] = data
        assert data.report["format"] == name.split(".")[1]
    names = loaded["data.csv"].feature_names
    for other in ("data.xlsx", "data.parquet"):
        assert loaded[other].feature_names == names
        np.testing.assert_allclose(loaded[other].x.numpy(), loaded["data.csv"].x.numpy(), equal_nan=True)
    assert loaded["data.xlsx"].report["sheet"] == "patients" and loaded["data.xlsx"].name == "data"
    with pytest.raises(DataError, match="no sheet 'nope'.*patients"):
        load_dataset(
            DataConfig(dataset="csv", path=str(tmp_path / "data.xlsx"), target="y", sheet="nope"), tmp_path
        )


def test_legacy_xls_and_garbage_are_refused_with_the_fix(tmp_path):
    with pytest.raises(DataError, match="legacy Excel .xls.*save it as .xlsx or CSV"):
        read_table(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 100)
    with pytest.raises(DataError, match="cannot be read as .xlsx"):
        read_table(b"PK\x03\x04 not really a workbook")
    with pytest.raises(DataError, match="cannot be read as Parquet"):
        read_table(b"PAR1 broken")


def test_missing_value_codes_become_missing(tmp_path):
    path = tmp_path / "codes.csv"
    path.write_text(
        "chol,stage,y\n"
        + "".join(f"{0 if i % 5 == 0 else 180 + i},{i % 4 + 1},{'ab'[i % 2]}\n" for i in range(40))
    )
    conf = DataConfig(dataset="csv", path=str(path), target="y", columns={"chol": {"missing_values": [0]}})
    data = load_dataset(conf, tmp_path)
    chol = data.x[:, data.feature_names.index("chol")].numpy()
    assert np.isnan(chol[::5]).all() and not np.isnan(np.delete(chol, np.s_[::5])).any()
    assert data.report["missing_codes"] == {"chol": 8} and data.report["missing"]["chol"] == 8
    report = inspect_csv(path)
    stage = next(c for c in report["columns"] if c["name"] == "stage")
    assert stage.get("suggest") == "categorical" and "category codes" in stage["note"]
    assert report["code_like"] == ["stage"]
    forced = inspect_csv(path, {"columns": {"stage": "categorical"}})
    assert "stage" not in forced["code_like"]


def test_column_problems_are_collected_for_the_page(tmp_path):
    path = tmp_path / "mixed.csv"
    path.write_text("a,b,y\n" + "".join(f"{i},{'oops' if i == 3 else i},{'km'[i % 2]}\n" for i in range(12)))
    problems: list[str] = []
    report = inspect_csv(path, {"target": "y"}, problems=problems)
    assert len(problems) == 1 and "column 'b' mixes numbers and text" in problems[0]
    b = next(c for c in report["columns"] if c["name"] == "b")
    assert b["role"] == "ignored" and "mixes numbers" in b["problem"]
    with pytest.raises(DataError, match="mixes numbers and text"):
        inspect_csv(path, {"target": "y"})


def test_wide_file_types_match_column_by_column(tmp_path):
    rng = np.random.default_rng(2)
    frame = pd.DataFrame(rng.normal(size=(50, 300)).round(2), columns=[f"f{i}" for i in range(300)])
    frame["f7"] = rng.integers(1, 4, 50)
    frame.loc[::7, "f9"] = np.nan
    frame["row_id"] = np.arange(50)
    frame["y"] = ["a", "b"] * 25
    path = tmp_path / "wide.csv"
    frame.to_csv(path, index=False)
    data = load_dataset(DataConfig(dataset="csv", path=str(path), target="y"), tmp_path)
    assert data.x.shape == (50, 300) and data.report["id_like"] == ["row_id"]
    np.testing.assert_allclose(data.x.numpy(), frame.drop(columns=["row_id", "y"]).to_numpy(), equal_nan=True)
    assert data.report["missing"] == {"f9": 8}
    assert Path(path).stat().st_size > 0


def test_a_workbook_naming_a_column_twice_is_refused(tmp_path):
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    sheet.append(["age", "bmi", "age", "y"])
    for i in range(6):
        sheet.append([30 + i, 20 + i, 40 + i, "ab"[i % 2]])
    book.save(tmp_path / "twice.xlsx")
    with pytest.raises(DataError, match="names 'age' more than once"):
        read_table(tmp_path / "twice.xlsx")
