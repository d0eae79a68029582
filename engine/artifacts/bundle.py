"""Downloads of kept models: one client's (or the federation's), or all of a run's, as a folder or a
zip. Each model folder holds ``model.safetensors``, ``preprocessing.safetensors``,
``config.json`` and the model card ``README.md``; with ``onnx`` also ``model.onnx``
(:mod:`engine.artifacts.onnx_export`, the ``onnx`` extra). A zip keeps the layout
``<run id>/<best|final>/<model>/...`` with the run's ``index.json``.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

from engine.artifacts.load import folder_of, index, resolve
from engine.errors import StorageError


def selection(store: Any, run_id: str, name: str | None = None) -> list[dict[str, Any]]:
    """The index entries a download holds: every model of the run, or both the best-validation
    and the final model of the one named."""
    idx = index(store, run_id)
    if name is None:
        return list(idx["models"])
    chosen = []
    for which in sorted({m["which"] for m in idx["models"]}):
        entry = resolve(store, run_id, name, which)
        chosen.append(entry)
    return chosen


def _files(store: Any, run_id: str, entries: list[dict[str, Any]], onnx: bool) -> list[tuple[str, bytes]]:
    """``(path inside the download, bytes)`` of every file."""
    idx = index(store, run_id)
    names = {(e["which"], e["name"]) for e in entries}
    idx["models"] = [m for m in idx["models"] if (m["which"], m["name"]) in names]
    out = [(f"{run_id}/index.json", json.dumps(idx, indent=2).encode())]
    for entry in entries:
        folder = folder_of(store, run_id, entry)
        base = f"{run_id}/{entry['which']}/{entry['name']}"
        for path in sorted(folder.iterdir()):
            if path.is_file():
                out.append((f"{base}/{path.name}", path.read_bytes()))
        if onnx and entry["part"] == "model":
            from engine.artifacts.onnx_export import onnx_bytes

            out.append((f"{base}/model.onnx", onnx_bytes(folder)))
    return out


def models_zip(store: Any, run_id: str, name: str | None = None, *, onnx: bool = False) -> bytes:
    """A zip of the run's kept models (all, or the one named), for a download button."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for path, data in _files(store, run_id, selection(store, run_id, name), onnx):
            zf.writestr(path, data)
    return buf.getvalue()


def export_models(store: Any, run_id: str, out: Path, name: str | None = None, *, onnx: bool = False) -> Path:
    """Write the run's kept models (all, or the one named) to ``out``: a zip when it ends in
    ``.zip``, else a folder (created; files already there with the same names are replaced).

    :raises ModelNotFoundError: the run keeps no such model.
    :raises StorageError: ``out`` cannot be written.
    """
    out = Path(out)
    try:
        if out.suffix.lower() == ".zip":
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(models_zip(store, run_id, name, onnx=onnx))
            return out
        for path, data in _files(store, run_id, selection(store, run_id, name), onnx):
            target = out / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        return out / run_id
    except OSError as exc:
        raise StorageError(f"cannot write {out}: {exc.strerror or exc}; choose another place") from None
