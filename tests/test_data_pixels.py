"""Pixel columns noticed as images (engine/data/tables/pixels.py): the shapes guessed from the names,
counts and values the inspection already has, and the tables that must not be taken for images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from engine.data import DataConfig, inspect_csv, load_dataset

ROWS = 30


def pixel_file(
    tmp_path: Path, names: list[str], values: np.ndarray | None = None, *, client: bool = True, seed: int = 0
) -> Path:
    """``label`` (4 classes), optionally ``client`` (text), then one column per name."""
    rng = np.random.default_rng(seed)
    values = rng.integers(0, 256, (ROWS, len(names))) if values is None else values
    frame = pd.DataFrame(values, columns=names)
    frame.insert(0, "label", np.arange(ROWS) % 4)
    if client:
        frame.insert(1, "client", np.where(np.arange(ROWS) % 3, "north", "south"))
    path = tmp_path / "pixels.csv"
    frame.to_csv(path, index=False)
    return path


def guess(path: Path, **data) -> dict | None:
    return inspect_csv(path, {"path": str(path), **data}, problems=[]).get("image_guess")


def test_px_columns_0_255_are_28x28_grayscale(tmp_path: Path) -> None:
    path = pixel_file(tmp_path, [f"px{i}" for i in range(784)])
    for data in ({}, {"target": "label"}):  # the suggested target (label) is left out before one is chosen
        found = guess(path, **data)
        assert found is not None, data
        assert found["shape"] == [1, 28, 28] and found["others"] == ["client"]
        assert (found["first"], found["last"], found["count"]) == ("px0", "px783", 784)
        assert (
            found["reason"] == "These 784 columns look like 28×28 grayscale images (px0…px783, values 0–255)"
        )
    # the client column as the split across clients is no longer a feature at all
    assert guess(path, target="label", partition={"method": "natural", "column": "client"})["others"] == []


def test_pixel_columns_0_1_counted_from_one(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    path = pixel_file(tmp_path, [f"pixel{i}" for i in range(1, 785)], rng.random((ROWS, 784)), client=False)
    found = guess(path, target="label")
    assert found["shape"] == [1, 28, 28] and found["others"] == [] and 0 <= found["low"] < found["high"] <= 1
    assert found["reason"].endswith("(pixel1…pixel784, values 0–1)")


def test_bare_numbered_rgb_is_read_channels_first(tmp_path: Path) -> None:
    values = np.random.default_rng(2).integers(0, 256, (ROWS, 3 * 32 * 32))
    path = pixel_file(tmp_path, [str(i) for i in range(3072)], values)
    found = guess(path, target="label")
    assert found["shape"] == [3, 32, 32] and found["others"] == ["client"]
    assert "32×32 colour images (channels first" in found["reason"]
    # the guessed shape reads the row as the engine reshapes it: column 1024 is the green plane's first pixel
    cfg = DataConfig(
        dataset="csv",
        path=str(path),
        target="label",
        image_shape=found["shape"],
        columns={"client": "ignore"},
    )
    ds = load_dataset(cfg, tmp_path)
    assert tuple(ds.x.shape[1:]) == (3, 32, 32)
    assert np.allclose(ds.x[0, 1, 0, 0].item(), values[0, 1024] / 255, atol=1e-6)


def test_row_by_column_grid_names(tmp_path: Path) -> None:
    names = [f"{r}x{c}" for r in range(1, 29) for c in range(1, 29)]  # label, 1x1, 1x2, ..., 28x28
    found = guess(pixel_file(tmp_path, names, client=False), target="label")
    assert found["shape"] == [1, 28, 28] and (found["first"], found["last"]) == ("1x1", "28x28")
    shuffled = names[:28] + names[29:30] + names[28:29] + names[30:]  # row 2 starts with 2x2, 2x1
    assert guess(pixel_file(tmp_path, shuffled, client=False), target="label") is None


def test_pixel_columns_are_not_offered_as_category_codes(tmp_path: Path) -> None:
    values = np.random.default_rng(3).integers(0, 256, (ROWS, 64))
    values[:, 0] = np.arange(ROWS) % 4  # a border pixel holding 4 small values, like a type code
    path = pixel_file(tmp_path, [f"p_{i}" for i in range(64)], values, client=False)
    report = inspect_csv(path, {"path": str(path), "target": "label"})
    assert report["image_guess"]["shape"] == [1, 8, 8] and report["code_like"] == []
    values[:, 1:] *= 1000  # now not pixels: the same small-valued column is offered as codes
    plain = pixel_file(tmp_path, [f"p_{i}" for i in range(64)], values, client=False)
    assert inspect_csv(plain, {"path": str(plain), "target": "label"})["code_like"] == ["p_0"]
    assert guess(plain, target="label") is None


def test_no_guess_once_read_as_images_or_windows(tmp_path: Path) -> None:
    path = pixel_file(tmp_path, [f"px{i}" for i in range(64)], client=False)
    assert guess(path, target="label", image_shape=[8, 8]) is None


@pytest.mark.parametrize(
    "case",
    [
        "tabular measurements",
        "one text column",
        "values up to 1000",
        "negative values",
        "a missing cell",
        "not a square",
        "unordered",
        "a gap",
        "starts at 2",
        "too many other columns",
    ],
)
def test_tables_that_are_not_images(tmp_path: Path, case: str) -> None:
    rng = np.random.default_rng(4)
    names = [f"px{i}" for i in range(784)]
    frame = pd.DataFrame(rng.integers(0, 256, (ROWS, 784)), columns=names)
    if case == "tabular measurements":  # 64 = 8 x 8 measurements within 0-255, named as measurements are
        frame = pd.DataFrame(
            rng.uniform(0, 200, (ROWS, 64)),
            columns=[
                f"{m}_{site}" for m in ("glucose", "hba1c", "ldl", "hdl") for site in "abcdefghijklmnop"
            ],
        )
    elif case == "one text column":
        frame["px300"] = np.where(np.arange(ROWS) % 2, "dark", "light")
    elif case == "values up to 1000":
        frame["px5"] = 1000
    elif case == "negative values":
        frame["px5"] = -1
    elif case == "a missing cell":
        frame["px5"] = frame["px5"].astype(float).where(np.arange(ROWS) != 3)
    elif case == "not a square":
        frame = frame[names[:780]]
    elif case == "unordered":
        frame = frame[[names[1], names[0], *names[2:]]]
    elif case == "a gap":
        frame = pd.concat([frame.drop(columns="px5"), pd.DataFrame({"px784": [7] * ROWS})], axis=1)
    elif case == "starts at 2":
        frame.columns = [f"px{i + 2}" for i in range(784)]
    elif case == "too many other columns":
        for k in range(9):
            frame[f"site_note{chr(97 + k)}"] = np.where(np.arange(ROWS) % 2, "x", "y")
    frame = frame.copy()
    frame.insert(0, "label", np.arange(ROWS) % 4)
    path = tmp_path / "table.csv"
    frame.to_csv(path, index=False)
    assert guess(path, target="label") is None


def test_example_images_and_the_model_hint() -> None:
    from engine.design import images

    shown = images.examples({"dataset": "digits", "max_samples": 200})
    assert [c for c, _ in shown] == [str(k) for k in range(10)]  # one per class, in class order
    assert all(a.shape == (56, 56) and a.dtype == np.uint8 for _, a in shown)  # 8x8 upscaled by 7, no blur
    assert max(int(a.max()) for _, a in shown) == 255 and np.array_equal(
        shown[0][1][:7, :7], shown[0][1][:1, :1].repeat(7, 0).repeat(7, 1)
    )
    assert images.examples({"dataset": "wine"}) == []  # not images
    mlps = {"clients": [{"name": "a", "count": 3, "model": {"arch": "mlp"}}]}
    assert "cnn, fedavg_cnn, resnet" in images.model_hint(mlps)
    assert images.model_hint({"clients": [*mlps["clients"], {"name": "b", "model": "cnn"}]}) is None
