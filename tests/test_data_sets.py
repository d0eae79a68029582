"""Every registered dataset loads with the documented shapes; MNIST-style and CIFAR-10 files
are read from files written here in the original on-disk formats, and missing files without a
network give a message that says where to put them."""

from __future__ import annotations

import gzip
import hashlib
import io
import struct
import tarfile
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.data import DATASETS, DataConfig, build, load_dataset, natural_groups
from engine.data.datasets import vision_files
from engine.errors import ConfigError, DataError


@pytest.mark.parametrize(
    ("name", "shape", "n_classes"),
    [("digits", (1, 8, 8), 10), ("breast_cancer", (30,), 2), ("wine", (13,), 3)],
)
def test_sklearn_sets(tmp_path, name, shape, n_classes):
    data = load_dataset(DataConfig(dataset=name), tmp_path)
    assert data.input_spec.shape == shape and data.n_outputs == n_classes
    assert data.x.dtype == torch.float32 and data.y.dtype == torch.long


@pytest.mark.parametrize(
    ("form", "target"),
    [("sequence", "congestion"), ("sequence", "volume"), ("tabular", "congestion"), ("tabular", "volume")],
)
def test_traffic_forms_and_targets(tmp_path, form, target):
    conf = DataConfig(
        dataset="traffic",
        options={"form": form, "target": target, "cities": 3, "days": 14, "window": 12},
        partition={"method": "natural", "column": "city"},
    )
    data = load_dataset(conf, tmp_path)
    expected_kind = "sequence" if form == "sequence" else "tabular"
    assert data.input_spec.kind == expected_kind
    if form == "sequence":
        assert data.input_spec.shape == (12, 8)
    if target == "congestion":
        assert data.task == "classification" and data.classes == ["free", "busy", "jammed"]
        assert len(np.unique(data.y.numpy())) == 3
    else:
        assert data.task == "regression" and data.y.dtype == torch.float32 and (data.y > 0).all()
    assert natural_groups(conf, tmp_path) == ["Avalon", "Brightwater", "Cinderford"]
    assert torch.isfinite(data.x).all()
    fed = build(conf, ["standardize"] * 3, [None] * 3, 0, tmp_path)
    assert len(fed.clients) == 3


def test_traffic_cities_differ_in_scale_and_generation_is_deterministic(tmp_path):
    conf = DataConfig(dataset="traffic", options={"form": "tabular", "target": "volume", "cities": 4})
    a = load_dataset(conf, tmp_path)
    b = DATASETS.get("traffic").load(conf, tmp_path)
    assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y)
    means = [a.y.numpy()[a.columns["city"] == c].mean() for c in np.unique(a.columns["city"])]
    assert max(means) > 1.5 * min(means)
    with pytest.raises(ConfigError, match="data.options"):
        load_dataset(DataConfig(dataset="traffic", options={"citys": 3}), tmp_path)


def test_shapes_domains_and_shift(tmp_path):
    conf = DataConfig(dataset="shapes", options={"domains": 3, "per_class": 10, "channels": 3, "shift": 1.0})
    data = load_dataset(conf, tmp_path)
    assert data.x.shape == (180, 3, 16, 16) and data.n_outputs == 6
    assert sorted(set(data.columns["domain"])) == ["domain 0", "domain 1", "domain 2"]
    mean = [
        data.x[torch.as_tensor(data.columns["domain"] == d)].mean().item() for d in ("domain 0", "domain 1")
    ]
    flat = load_dataset(
        DataConfig(dataset="shapes", options={"domains": 2, "per_class": 10, "shift": 0.0}), tmp_path
    )
    flat_mean = [
        flat.x[torch.as_tensor(flat.columns["domain"] == d)].mean().item() for d in ("domain 0", "domain 1")
    ]
    assert abs(mean[0] - mean[1]) > abs(flat_mean[0] - flat_mean[1])
    with pytest.raises(ConfigError, match="channels"):
        load_dataset(DataConfig(dataset="shapes", options={"channels": 2}), tmp_path)


# ---- MNIST-style IDX files and CIFAR-10 binary batches -------------------------------------


def idx_bytes(array: np.ndarray) -> bytes:
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_idx_set(folder: Path, n_train: int = 30, n_test: int = 10, gz: bool = True) -> np.ndarray:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    labels = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, (n, 28, 28))
        labels[prefix] = np.arange(n) % 10
        for kind, arr in (("images-idx3", images), ("labels-idx1", labels[prefix])):
            raw = idx_bytes(arr)
            name = f"{prefix}-{kind}-ubyte"
            if gz:
                (folder / (name + ".gz")).write_bytes(gzip.compress(raw))
            else:
                (folder / name).write_bytes(raw)
    return np.concatenate([labels["train"], labels["t10k"]])


@pytest.mark.parametrize("gz", [True, False])
@pytest.mark.parametrize("name", ["mnist", "fashion_mnist"])
def test_idx_sets_from_local_files(tmp_path, name, gz):
    labels = write_idx_set(tmp_path / name, gz=gz)
    data = load_dataset(DataConfig(dataset=name, download=False), tmp_path)
    assert data.x.shape == (40, 1, 28, 28) and 0 <= data.x.min() and data.x.max() <= 1
    assert np.array_equal(data.y.numpy(), labels) and data.n_outputs == 10


def test_idx_torchvision_layout_and_explicit_path(tmp_path):
    write_idx_set(tmp_path / "MNIST" / "raw")
    assert len(load_dataset(DataConfig(dataset="mnist", download=False), tmp_path)) == 40
    write_idx_set(tmp_path / "elsewhere", n_train=20)
    conf = DataConfig(dataset="mnist", download=False, path=str(tmp_path / "elsewhere"))
    assert len(load_dataset(conf, tmp_path)) == 30


def test_idx_max_samples_subsamples_while_loading(tmp_path):
    write_idx_set(tmp_path / "mnist", n_train=100, n_test=20)
    data = load_dataset(DataConfig(dataset="mnist", download=False, max_samples=50), tmp_path)
    assert len(data) == 50 and data.report["files_samples"] == 120


def test_corrupt_idx_file(tmp_path):
    write_idx_set(tmp_path / "mnist", gz=False)
    path = tmp_path / "mnist" / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(DataError, match="truncated or corrupt"):
        load_dataset(DataConfig(dataset="mnist", download=False), tmp_path)
    path.write_bytes(b"not an idx file at all")
    with pytest.raises(DataError, match="not an IDX file"):
        vision_files.read_idx(path)


def test_missing_files_offline_say_where_to_put_them(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(vision_files.urllib.request, "urlopen", offline)
    with pytest.raises(DataError, match=r"could not be downloaded .*put them in .*mnist.*data.path"):
        load_dataset(DataConfig(dataset="mnist"), tmp_path)
    with pytest.raises(DataError, match="data.download is off"):
        load_dataset(DataConfig(dataset="fashion_mnist", download=False), tmp_path)
    with pytest.raises(DataError, match=r"cifar10 files are missing .*cifar-10-binary.tar.gz"):
        load_dataset(DataConfig(dataset="cifar10"), tmp_path)
    leftovers = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert leftovers == []  # nothing half-downloaded is left behind


def cifar_batch(n: int, seed: int) -> tuple[bytes, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n).astype(np.uint8)
    pixels = rng.integers(0, 256, (n, 3072)).astype(np.uint8)
    return np.concatenate([labels[:, None], pixels], axis=1).tobytes(), labels, pixels


def write_cifar(folder: Path, n: int = 6) -> tuple[np.ndarray, np.ndarray]:
    folder.mkdir(parents=True, exist_ok=True)
    labels, pixels = [], []
    for i, name in enumerate(vision_files.CIFAR_FILES):
        raw, lab, pix = cifar_batch(n, i)
        (folder / name).write_bytes(raw)
        labels.append(lab)
        pixels.append(pix)
    return np.concatenate(labels), np.concatenate(pixels)


def test_cifar10_binary_batches(tmp_path):
    labels, pixels = write_cifar(tmp_path / "cifar10" / "cifar-10-batches-bin")
    data = load_dataset(DataConfig(dataset="cifar10", download=False), tmp_path)
    assert data.x.shape == (36, 3, 32, 32) and data.classes[0] == "airplane"
    assert np.array_equal(data.y.numpy(), labels)
    assert np.allclose(data.x[0].numpy().reshape(-1), pixels[0] / 255.0)
    bad = tmp_path / "cifar10" / "cifar-10-batches-bin" / "test_batch.bin"
    bad.write_bytes(b"\x00" * 100)
    with pytest.raises(DataError, match="not a CIFAR-10 binary batch"):  # uncached: load directly
        DATASETS.get("cifar10").load(DataConfig(dataset="cifar10", download=False), tmp_path)


def test_cifar10_archive_download_extracts_only_batches(tmp_path, monkeypatch):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for i, name in enumerate(vision_files.CIFAR_FILES + ("../evil.bin",)):
            raw = cifar_batch(4, i)[0]
            info = tarfile.TarInfo(f"cifar-10-batches-bin/{name}")
            info.size = len(raw)
            tar.addfile(info, io.BytesIO(raw))
    archive = buf.getvalue()

    class Response(io.BytesIO):
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    monkeypatch.setattr(vision_files.urllib.request, "urlopen", lambda url, timeout: Response(archive))
    with pytest.raises(DataError, match="checksum mismatch"):  # the real MD5 does not match this archive
        load_dataset(DataConfig(dataset="cifar10"), tmp_path)
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []
    monkeypatch.setattr(vision_files, "CIFAR_MD5", hashlib.md5(archive).hexdigest())
    data = load_dataset(DataConfig(dataset="cifar10"), tmp_path)
    assert len(data) == 24
    files = sorted(p.name for p in tmp_path.rglob("*") if p.is_file())
    assert files == sorted(vision_files.CIFAR_FILES)
