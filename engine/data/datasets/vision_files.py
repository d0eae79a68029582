"""MNIST, Fashion-MNIST and CIFAR-10 read from their original files with numpy (no torchvision,
nothing unpickled).

- ``mnist`` (LeCun et al. 1998) and ``fashion_mnist`` (Xiao et al. 2017, arXiv:1708.07747): the
  four IDX files, gzipped or not: ``train-images-idx3-ubyte[.gz]``, ``train-labels-idx1-ubyte[.gz]``,
  ``t10k-images-idx3-ubyte[.gz]``, ``t10k-labels-idx1-ubyte[.gz]``.
- ``cifar10`` (Krizhevsky 2009): the *binary* version, folder ``cifar-10-batches-bin`` with
  ``data_batch_1.bin`` ... ``data_batch_5.bin`` and ``test_batch.bin`` (records of 1 label byte +
  3,072 pixel bytes).

Files are looked for in ``data.path`` when set, else under the data directory (``<root>/mnist``,
``<root>/fashion_mnist``, ``<root>/cifar10``, and torchvision's ``<root>/MNIST/raw`` layout). Missing
files are downloaded from the canonical URLs when ``data.download`` is on and a network exists,
checked against their published MD5 and moved into place only when complete; otherwise the error
says which files to put where. The official train and test files are pooled: FedMosaic cuts its own
global test set. With ``data.max_samples`` the subsample (stratified, fixed seed) is taken while
loading, so only the kept images are converted to float.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import tarfile
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from engine.access import check_download_target
from engine.data.base import DATASETS, Dataset, DatasetSource, as_tensor_x, stratified_split
from engine.data.config import DataConfig
from engine.errors import DataError
from engine.models.base import InputSpec

IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
IDX_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
CIFAR_FILES = tuple(f"data_batch_{i}.bin" for i in range(1, 6)) + ("test_batch.bin",)
CIFAR_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"
CIFAR_MD5 = "c32a1d4ab5d03f1284b67883e8d87530"
CIFAR_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
TIMEOUT_S = 30


@dataclass(frozen=True)
class IdxSource:
    """Where an IDX dataset lives and how to fetch it."""

    key: str
    torchvision_dir: str
    base_url: str
    md5: dict[str, str]
    classes: list[str]


MNIST = IdxSource(
    "mnist",
    "MNIST",
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    {
        "train-images-idx3-ubyte": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte": "d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte": "9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte": "ec29112dd5afa0611ce80d1b7f02629c",
    },
    [str(i) for i in range(10)],
)
FASHION_MNIST = IdxSource(
    "fashion_mnist",
    "FashionMNIST",
    "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
    {
        "train-images-idx3-ubyte": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte": "25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte": "bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte": "bb300cfdad3c16e7a12a480ee83cd310",
    },
    [
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ],
)


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (gzipped or raw) as a numpy array.

    :raises DataError: not IDX, or truncated.
    """
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise DataError(
                f"{path} is a damaged gzip file ({exc}); delete it and download it again"
            ) from None
    if len(raw) < 4 or raw[:2] != b"\x00\x00" or raw[2] not in IDX_DTYPES:
        raise DataError(f"{path} is not an IDX file (bad magic number); replace it with the original file")
    ndim = raw[3]
    header = 4 + 4 * ndim
    dims = tuple(int(d) for d in np.frombuffer(raw[4:header], dtype=">u4")) if len(raw) >= header else ()
    dtype = np.dtype(IDX_DTYPES[raw[2]])
    expected = header + int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if len(dims) != ndim or len(raw) != expected:
        raise DataError(
            f"{path} is truncated or corrupt ({len(raw)} bytes, expected {expected}); delete it "
            f"and download it again"
        )
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims)


def read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Images ``(N, 3, 32, 32)`` uint8 and labels ``(N,)`` of one CIFAR-10 binary batch.

    :raises DataError: a size that is not a whole number of records, or labels above 9.
    """
    raw = np.fromfile(path, dtype=np.uint8)
    if raw.size == 0 or raw.size % 3073:
        raise DataError(
            f"{path} is not a CIFAR-10 binary batch ({raw.size} bytes is not a multiple of "
            f"3073); use the binary version (cifar-10-binary.tar.gz), not the python one"
        )
    records = raw.reshape(-1, 3073)
    labels = records[:, 0].astype(np.int64)
    if labels.max() > 9:
        raise DataError(f"{path} has label {labels.max()}; it is not a CIFAR-10 binary batch")
    return records[:, 1:].reshape(-1, 3, 32, 32), labels


def _md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def download(url: str, dest: Path, md5: str | None) -> None:
    """Fetch ``url`` to ``dest`` through a temporary file, checking ``md5``; nothing is left behind
    on failure.

    :raises OSError: no network, HTTP error, not https, or a checksum mismatch (as ``OSError``).
    """
    if not url.startswith("https://"):
        raise OSError(f"refusing to download over plain http: {url}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, suffix=".part")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:
            final = getattr(response, "geturl", lambda: url)()
            if not str(final).startswith("https://"):
                raise OSError(f"refusing a download redirected to {final} (not https)")
            for block in iter(lambda: response.read(1 << 20), b""):
                out.write(block)
        if md5 is not None and _md5(tmp) != md5:
            raise OSError(f"checksum mismatch for {url}")
        tmp.replace(dest)
    finally:
        tmp.unlink(missing_ok=True)


def _missing_message(name: str, files: list[str], folder: Path, url: str, reason: str) -> str:
    return (
        f"{name} files are missing ({', '.join(files)}) and {reason}. Download them from {url} and put "
        f"them in {folder} (gzipped or not), or set data.path to the folder that holds them"
    )


def _idx_folders(cfg: DataConfig, root: Path, src: IdxSource) -> list[Path]:
    if cfg.path:
        return [Path(cfg.path).expanduser()]
    return [root / src.key, root / src.torchvision_dir / "raw", root / src.torchvision_dir]


def _find(folders: list[Path], stem: str) -> Path | None:
    for folder in folders:
        for name in (stem, stem + ".gz"):
            if (folder / name).is_file():
                return folder / name
    return None


def load_idx(src: IdxSource, cfg: DataConfig, root: Path) -> tuple[np.ndarray, np.ndarray]:
    """All images ``(N, 28, 28)`` and labels of an IDX dataset, downloading missing files if allowed.

    :raises DataError: files missing and not downloadable (says where to put them), or corrupt.
    """
    folders = _idx_folders(cfg, root, src)
    missing = [stem for stem in IDX_FILES if _find(folders, stem) is None]
    if missing:
        files = [m + ".gz" for m in missing]
        if not cfg.download:
            raise DataError(
                _missing_message(src.key, files, folders[0], src.base_url, "data.download is off")
            )
        check_download_target(folders[0], root)
        for stem in missing:
            try:
                download(src.base_url + stem + ".gz", folders[0] / (stem + ".gz"), src.md5.get(stem))
            except (OSError, urllib.error.URLError, TimeoutError) as exc:
                raise DataError(
                    _missing_message(
                        src.key, files, folders[0], src.base_url, f"could not be downloaded ({exc})"
                    )
                ) from None
    arrays = {stem: read_idx(_find(folders, stem)) for stem in IDX_FILES}  # type: ignore[arg-type]
    images = np.concatenate([arrays["train-images-idx3-ubyte"], arrays["t10k-images-idx3-ubyte"]])
    labels = np.concatenate([arrays["train-labels-idx1-ubyte"], arrays["t10k-labels-idx1-ubyte"]])
    if images.ndim != 3 or len(images) != len(labels):
        raise DataError(
            f"{src.key}: {len(images)} images but {len(labels)} labels; the files do not belong together"
        )
    return images, labels.astype(np.int64)


def _extract_cifar(archive: Path, folder: Path) -> None:
    """Copy only the six expected batch files out of the archive (no path from it is trusted)."""
    folder.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "r:gz") as tar:
        for member in tar.getmembers():
            base = member.name.rsplit("/", 1)[-1]
            if member.isfile() and base in CIFAR_FILES + ("batches.meta.txt",):
                source = tar.extractfile(member)
                if source is not None:
                    tmp = folder / (base + ".part")
                    tmp.write_bytes(source.read())
                    tmp.replace(folder / base)


def load_cifar(cfg: DataConfig, root: Path) -> tuple[np.ndarray, np.ndarray]:
    """All CIFAR-10 images ``(N, 3, 32, 32)`` uint8 and labels, downloading them if allowed."""
    if cfg.path:
        given = Path(cfg.path).expanduser()
        folders = [given, given / "cifar-10-batches-bin"]
    else:
        folders = [root / "cifar10" / "cifar-10-batches-bin", root / "cifar-10-batches-bin"]
    folder = next((f for f in folders if all((f / n).is_file() for n in CIFAR_FILES)), None)
    if folder is None:
        target = folders[0]
        missing = [n for n in CIFAR_FILES if not (target / n).is_file()]
        reason = "data.download is off"
        if cfg.download:
            check_download_target(target, root)
            archive = target / "cifar-10-binary.tar.gz"
            try:
                if not archive.is_file():
                    download(CIFAR_URL, archive, CIFAR_MD5)
                _extract_cifar(archive, target)
                archive.unlink()
                folder = target
            except (OSError, urllib.error.URLError, TimeoutError, tarfile.TarError) as exc:
                reason = f"could not be downloaded ({exc})"
        if folder is None or not all((folder / n).is_file() for n in CIFAR_FILES):
            raise DataError(
                _missing_message("cifar10", missing, target, CIFAR_URL + " (extract the archive)", reason)
            )
    parts = [read_cifar_batch(folder / n) for n in CIFAR_FILES]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def _to_dataset(
    name: str, images: np.ndarray, labels: np.ndarray, classes: list[str], cfg: DataConfig
) -> Dataset:
    if images.ndim == 3:
        images = images[:, None]
    kept = len(labels)
    if cfg.max_samples is not None and cfg.max_samples < len(labels):
        keep, _ = stratified_split(labels, 1 - cfg.max_samples / len(labels), np.random.default_rng(0))
        images, labels = images[keep], labels[keep]
    x = as_tensor_x(images.astype(np.float32) / 255.0)
    return Dataset(
        name,
        x,
        torch.as_tensor(labels, dtype=torch.long),
        InputSpec("image", tuple(x.shape[1:])),
        classes=classes,
        report={"files_samples": kept, "loaded_samples": len(labels)},
    )


@DATASETS.register("mnist")
class Mnist(DatasetSource):
    description = "70,000 28x28 handwritten digits, 10 classes (downloaded, or from a local folder)."
    kind = "image"
    task = "classification"
    source = "LeCun et al. 1998; IDX files from " + MNIST.base_url

    @classmethod
    def load(cls, cfg: DataConfig, root: Path) -> Dataset:
        return _to_dataset("mnist", *load_idx(MNIST, cfg, root), MNIST.classes, cfg)


@DATASETS.register("fashion_mnist")
class FashionMnist(DatasetSource):
    description = "70,000 28x28 clothing images, 10 classes (downloaded, or from a local folder)."
    kind = "image"
    task = "classification"
    source = "Xiao et al. 2017, arXiv:1708.07747; IDX files from " + FASHION_MNIST.base_url

    @classmethod
    def load(cls, cfg: DataConfig, root: Path) -> Dataset:
        return _to_dataset("fashion_mnist", *load_idx(FASHION_MNIST, cfg, root), FASHION_MNIST.classes, cfg)


@DATASETS.register("cifar10")
class Cifar10(DatasetSource):
    description = (
        "60,000 32x32 colour images, 10 classes (binary version; downloaded, or from a local folder)."
    )
    kind = "image"
    task = "classification"
    source = "Krizhevsky 2009; " + CIFAR_URL

    @classmethod
    def load(cls, cfg: DataConfig, root: Path) -> Dataset:
        return _to_dataset("cifar10", *load_cifar(cfg, root), CIFAR_CLASSES, cfg)
