"""The user-CSV dataset: type inference, overrides, imputation, images, windows, and every bad
input the data issue lists (one clear DataError each, nothing cached half)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from engine.data import DataConfig, build, inspect_csv, load_dataset, natural_groups
from engine.errors import ConfigError, DataError


def write(tmp_path: Path, text: str | bytes, name: str = "data.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


def cfg(path: Path, **fields) -> DataConfig:
    return DataConfig(dataset="csv", path=str(path), **fields)


def mixed_frame(n: int = 60, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "row_id": np.arange(1000, 1000 + n),
            "site": rng.choice(["north", "south", "east"], n),
            "when": pd.date_range("2024-01-01 06:00", periods=n, freq="7h").astype(str),
            "age": rng.normal(50, 10, n).round(1),
            "colour": rng.choice(["red", "green", "blue"], n),
            "flag": rng.choice(["yes", "no"], n),
            "size": rng.choice(["S", "M", "L"], n),
            "y": np.tile(["a", "b"], n // 2),
        }
    )


def test_inference_types_roles_and_report(tmp_path):
    df = mixed_frame()
    df.loc[[3, 7], "age"] = np.nan
    df.loc[[5], "colour"] = np.nan
    path = write(tmp_path, df.to_csv(index=False))
    data = load_dataset(cfg(path, target="y"), tmp_path)
    types = {c["name"]: c["type"] for c in data.report["columns"]}
    assert types == {
        "row_id": "id",
        "site": "categorical",
        "when": "datetime",
        "age": "numeric",
        "colour": "categorical",
        "flag": "boolean",
        "size": "categorical",
    }
    assert data.report["id_like"] == ["row_id"]
    assert data.report["missing"] == {"age": 2, "colour": 1}
    assert data.report["missing_total"] == 3
    assert data.task == "classification" and data.classes == ["a", "b"]
    assert "when.hour" in data.feature_names and "when.weekday" in data.feature_names
    assert "colour=red" in data.feature_names and not any(f.startswith("row_id") for f in data.feature_names)
    assert data.input_spec.kind == "tabular" and data.x.shape == (60, len(data.feature_names))
    # missing values stay missing: each client's preprocessing fills them, not the whole file
    age = data.x[:, data.feature_names.index("age")].numpy()
    assert np.isnan(age[[3, 7]]).all() and np.isfinite(np.delete(age, [3, 7])).all()
    colour = data.x[:, [i for i, f in enumerate(data.feature_names) if f.startswith("colour=")]].numpy()
    assert np.isnan(colour[5]).all() and np.nansum(colour, axis=1).tolist() == [1.0] * 5 + [0.0] + [1.0] * 54
    assert [f.kind for f in data.features if f.column == "colour"] == ["onehot"] * 3


def test_overrides_ordinal_ignore_numeric_and_task(tmp_path):
    df = mixed_frame()
    path = write(tmp_path, df.to_csv(index=False))
    overrides = {
        "size": {"type": "ordinal", "order": ["S", "M", "L"]},
        "colour": "ignore",
        "row_id": "numeric",
        "age": {"impute": "zero"},
    }
    data = load_dataset(cfg(path, target="y", columns=overrides), tmp_path)
    assert "size" in data.feature_names and "row_id" in data.feature_names
    assert not any(f.startswith("colour") for f in data.feature_names)
    size = data.x[:, data.feature_names.index("size")].numpy()
    assert np.array_equal(size, df["size"].map({"S": 0, "M": 1, "L": 2}).to_numpy())
    with pytest.raises(DataError, match="data.columns names 'nope'"):
        load_dataset(cfg(path, target="y", columns={"nope": "numeric"}), tmp_path)


def test_regression_inferred_and_overridden(tmp_path):
    rng = np.random.default_rng(1)
    df = pd.DataFrame({"a": rng.normal(size=40), "b": rng.normal(size=40)})
    df["price"] = 3 * df["a"] + rng.normal(0, 0.1, 40)
    df["stars"] = rng.integers(1, 6, 40)
    path = write(tmp_path, df.to_csv(index=False))
    data = load_dataset(cfg(path, target="price"), tmp_path)
    assert data.task == "regression" and data.y.dtype == torch.float32 and data.n_outputs == 1
    assert data.report["target_stats"]["std"] > 0
    stars = load_dataset(cfg(path, target="stars"), tmp_path)
    assert stars.task == "classification"
    forced = load_dataset(cfg(path, target="stars", task="regression"), tmp_path)
    assert forced.task == "regression" and forced.report["task_inferred"] == "classification"


def test_rows_with_missing_target_are_dropped_and_counted(tmp_path):
    df = mixed_frame()
    df.loc[[0, 1], "y"] = np.nan
    data = load_dataset(cfg(write(tmp_path, df.to_csv(index=False)), target="y"), tmp_path)
    assert len(data) == 58 and data.report["dropped_rows"] == {"missing y": 2}


def test_natural_column_kept_out_of_features(tmp_path):
    path = write(tmp_path, mixed_frame().to_csv(index=False))
    conf = cfg(path, target="y", partition={"method": "natural", "column": "site"})
    data = load_dataset(conf, tmp_path)
    assert not any(f.startswith("site") for f in data.feature_names)
    assert set(data.columns["site"]) == {"north", "south", "east"}
    assert natural_groups(conf, tmp_path) == ["east", "north", "south"]
    fed = build(conf, ["standardize"] * 3, [None] * 3, 0, tmp_path)
    for client, name in zip(fed.clients, ["east", "north", "south"], strict=True):
        assert set(data.columns["site"][client.index]) == {name}


def test_inspect_csv_on_upload_bytes_without_target(tmp_path):
    raw = mixed_frame().to_csv(index=False).encode()
    report = inspect_csv(raw)
    assert report["rows"] == 60 and report["target_suggestion"] == "y"
    assert "site" in report["natural_candidates"] and report["id_like"] == ["row_id"]
    with_target = inspect_csv(raw, {"target": "y"})
    assert with_target["task"] == "classification" and with_target["samples"] == 60


def test_semicolon_delimiter_is_detected(tmp_path):
    path = write(tmp_path, mixed_frame().to_csv(index=False, sep=";"))
    data = load_dataset(cfg(path, target="y"), tmp_path)
    assert data.report["delimiter"] == ";" and len(data) == 60


def test_pixel_csv_read_as_images(tmp_path):
    rng = np.random.default_rng(2)
    pixels = rng.integers(0, 256, (30, 12))
    frame = pd.DataFrame(pixels, columns=[f"px{i}" for i in range(12)])
    frame.insert(0, "label", np.repeat([0, 1, 2], 10))
    path = write(tmp_path, frame.to_csv(index=False))
    data = load_dataset(cfg(path, target="label", image_shape=[3, 2, 2]), tmp_path)
    assert data.input_spec.kind == "image" and data.x.shape == (30, 3, 2, 2)
    assert np.allclose(data.x[0].flatten().numpy(), pixels[0] / 255.0)
    with pytest.raises(DataError, match="needs 16 pixel columns but the file has 12"):
        load_dataset(cfg(path, target="label", image_shape=[4, 4]), tmp_path)
    with pytest.raises(ValueError):
        DataConfig(dataset="csv", image_shape=[0, 4])


def test_time_windows_per_series(tmp_path):
    n = 50
    rows = []
    for s, offset in (("s1", 0.0), ("s2", 5.0)):
        t = pd.date_range("2024-03-01", periods=n, freq="h")
        v = offset + np.arange(n, dtype=float)
        rows.append(pd.DataFrame({"sensor": s, "ts": t.astype(str), "reading": v, "next": v + 1}))
    frame = pd.concat(rows).sample(frac=1.0, random_state=0)  # shuffled: the loader sorts by time
    path = write(tmp_path, frame.to_csv(index=False))
    window = {"time_column": "ts", "length": 5, "stride": 2, "horizon": 1}
    conf = cfg(
        path,
        target="next",
        task="regression",
        window=window,
        partition={"method": "natural", "column": "sensor"},
    )
    data = load_dataset(conf, tmp_path)
    per_series = len(range(4, n - 1, 2))
    assert data.input_spec.kind == "sequence" and data.x.shape[:2] == (2 * per_series, 5)
    col = data.feature_names.index("reading")
    x, y = data.x[:, :, col].numpy(), data.y.numpy()
    assert np.allclose(np.diff(x, axis=1), 1.0)  # sorted, consecutive rows, never across series
    assert np.allclose(y, x[:, -1] + 2)  # horizon 1: target of the row after the window
    assert set(data.columns["sensor"]) == {"s1", "s2"}
    with pytest.raises(DataError, match="no window fits"):
        load_dataset(
            cfg(
                path,
                target="next",
                window={"time_column": "ts", "length": 60},
                partition={"method": "natural", "column": "sensor"},
            ),
            tmp_path,
        )
    with pytest.raises(ValueError, match="include_target"):
        DataConfig(dataset="csv", window={"time_column": "ts", "include_target": True})


def test_hospital_example_loads(tmp_path):
    path = Path(__file__).resolve().parents[1] / "examples" / "data" / "hospital.csv"
    conf = cfg(path, target="readmitted", partition={"method": "natural", "column": "hospital"})
    data = load_dataset(conf, tmp_path)
    assert data.report["missing_total"] > 0 and data.report["id_like"] == ["patient_id"]
    assert len(natural_groups(conf, tmp_path)) == 5


# ---- bad input: one clear message each ------------------------------------------------------


BAD_CASES = {
    "empty file": ("", {}, "is empty"),
    "header only": ("a,b,y\n", {}, "no data rows"),
    "missing target": (
        "a,b,y\n1,2,x\n3,4,z\n",
        {"target": "why"},
        "target 'why' is not a column.*did you mean 'y'",
    ),
    "one class": ("a,y\n1,k\n2,k\n3,k\n", {}, "single class"),
    "single-sample class": ("a,y\n1,k\n2,k\n3,m\n4,k\n", {}, r"class 'm' .* single sample \(line 4\)"),
    "infinite value": ("a,y\n1,k\n2,m\ninf,k\n4,m\n", {}, r"column 'a' has an infinite value .* line 4"),
    "mixed types": (
        "a,y\n1,k\n2,m\n3,k\noops,m\n5,k\n6,m\n",
        {},
        r"column 'a' mixes numbers and text \(line 5: 'oops'\)",
    ),
    "ragged row": ("a,b,y\n1,2,k\n3,4,m,9\n", {}, "line 3 has 4 fields but the header has 3"),
    "one column": ("y\nk\nm\n", {}, "single column"),
}


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_bad_input_gives_one_clear_error(tmp_path, case):
    text, fields, message = BAD_CASES[case]
    fields = {"target": "y", **fields}
    with pytest.raises(DataError, match=message):
        load_dataset(cfg(write(tmp_path, text), **fields), tmp_path)


def test_wrong_delimiter_is_named(tmp_path):
    path = write(tmp_path, "a;b;y\n1;2;k\n3;4;m\n")
    with pytest.raises(DataError, match="set data.delimiter to ';'"):
        load_dataset(cfg(path, target="y", delimiter=","), tmp_path)


def test_wrong_encoding_is_named_and_auto_detects_it(tmp_path):
    path = write(tmp_path, "city,a,y\nZürich,1,k\nBern,2,m\nBasel,3,k\nChur,4,m\n".encode("latin-1"))
    with pytest.raises(DataError, match="line 2 is not valid utf-8.*set data.encoding to cp1252"):
        load_dataset(cfg(path, target="y", encoding="utf-8"), tmp_path)
    for encoding in ("latin-1", "auto"):
        data = load_dataset(cfg(path, target="y", encoding=encoding), tmp_path)
        assert data.report["columns"][0]["examples"][0] == "Zürich"
    assert data.report["encoding"] == "cp1252" and "encoding" in data.report["detected"]
    with pytest.raises(Exception, match="unknown encoding"):
        DataConfig(dataset="csv", encoding="klingon")


def test_empty_column_is_left_out_with_a_warning(tmp_path):
    path = write(tmp_path, "a,b,y,\n1,,k,\n2,,m,\n3,,k,\n4,,m,\n")  # and a stray trailing separator
    data = load_dataset(cfg(path, target="y"), tmp_path)
    assert data.feature_names == ["a"]
    assert data.report["empty"] == ["b", "Unnamed: 3"]
    assert any("empty columns" in w for w in data.report["warnings"])


def test_file_over_size_limit(tmp_path):
    path = write(tmp_path, "a,y\n" + "1.0,k\n2.0,m\n" * 5000)
    with pytest.raises(DataError, match=r"over the limit data.max_file_mb = 0.01"):
        load_dataset(cfg(path, target="y", max_file_mb=0.01), tmp_path)


def test_more_clients_than_samples(tmp_path):
    path = write(tmp_path, "a,y\n" + "".join(f"{i},{'km'[i % 2]}\n" for i in range(12)))
    with pytest.raises(DataError, match="20 clients but only"):
        build(cfg(path, target="y"), ["none"] * 20, [None] * 20, 0, tmp_path)


def test_natural_column_with_one_value(tmp_path):
    path = write(tmp_path, "site,a,y\n" + "".join(f"A,{i},{'km'[i % 2]}\n" for i in range(12)))
    conf = cfg(path, target="y", partition={"method": "natural", "column": "site"})
    with pytest.raises(DataError, match="column 'site' has a single value"):
        build(conf, ["none"] * 2, [None] * 2, 0, tmp_path)


def test_missing_path_and_target(tmp_path):
    with pytest.raises(DataError, match="data.path is not set"):
        load_dataset(DataConfig(dataset="csv"), tmp_path)
    with pytest.raises(DataError, match="is not a file"):
        load_dataset(cfg(tmp_path / "nope.csv", target="y"), tmp_path)
    path = write(tmp_path, "a,y\n1,k\n2,m\n")
    with pytest.raises(DataError, match="data.target is not set"):
        load_dataset(cfg(path), tmp_path)


def test_fixed_file_loads_after_an_error(tmp_path):
    path = write(tmp_path, "a,y\n1,k\n2,m\ninf,k\n4,m\n")
    with pytest.raises(DataError):
        load_dataset(cfg(path, target="y"), tmp_path)
    write(tmp_path, "a,y\n1,k\n2,m\n3,k\n4,m\n5,k\n")
    assert len(load_dataset(cfg(path, target="y"), tmp_path)) == 5


def test_mixed_column_fixed_by_override(tmp_path):
    path = write(tmp_path, "a,y\n1,k\n2,m\n3,k\noops,m\n5,k\n6,m\n")
    data = load_dataset(cfg(path, target="y", columns={"a": "numeric"}), tmp_path)
    assert data.report["missing"] == {"a": 1}
    as_text = load_dataset(cfg(path, target="y", columns={"a": "categorical"}), tmp_path)
    assert "a=oops" in as_text.feature_names


def test_unknown_partition_param_is_a_config_error(tmp_path):
    path = write(tmp_path, mixed_frame().to_csv(index=False))
    with pytest.raises(ConfigError):
        build(
            cfg(path, target="y", partition={"method": "natural", "colum": "site"}),
            ["none"] * 3,
            [None] * 3,
            0,
            tmp_path,
        )
