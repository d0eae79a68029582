"""Drafts: the design autosaved per browser session (its id travels in the page address as
``?draft=...``) and named drafts, as JSON files under ``<data dir>/drafts/``."""

from __future__ import annotations

import json
import re
import time
import uuid
from pathlib import Path
from typing import Any

from engine.design.document import fingerprint
from engine.design.scenarios import new_design
from engine.errors import ConfigError, StorageError
from engine.labels import dataset_label
from engine.sanitize import safe_filename
from engine.tracking.storage import default_data_dir


def drafts_dir(root: Path | None = None) -> Path:
    """Folder of drafts in the data directory (``drafts/`` for named ones, ``drafts/auto/``)."""
    return (root or default_data_dir()) / "drafts"


_SESSION_RE = re.compile(r"^[A-Za-z0-9_-]{6,64}$")


def is_session_id(text: str | None) -> bool:
    """Whether ``text`` can name a browser session's autosave (what ``?draft=...`` may hold)."""
    return bool(text) and bool(_SESSION_RE.match(text))


def new_session_id() -> str:
    """An id for a browser session's autosave (kept in the page URL)."""
    return uuid.uuid4().hex[:16]


def _auto_path(session_id: str, root: Path | None) -> Path:
    if not _SESSION_RE.match(session_id or ""):
        raise StorageError("invalid draft id in the page address; open the app again without '?draft=...'")
    return drafts_dir(root) / "auto" / f"{session_id}.json"


def _write_json(path: Path, data: Any) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2, default=str), encoding="utf-8")
        tmp.replace(path)
    except OSError as exc:
        raise StorageError(
            f"cannot save the draft to {path}: {exc.strerror}; check that the data "
            f"directory is writable (FEDMOSAIC_HOME)"
        ) from None


def autosave(session_id: str, design: dict[str, Any], root: Path | None = None) -> None:
    """Save the session's current design (called after every change)."""
    _write_json(_auto_path(session_id, root), {"saved_at": time.time(), "design": design})


def load_autosave(session_id: str, root: Path | None = None) -> dict[str, Any] | None:
    """The session's autosaved design, or ``None``."""
    try:
        path = _auto_path(session_id, root)
        return json.loads(path.read_text(encoding="utf-8"))["design"]
    except (OSError, KeyError, json.JSONDecodeError, StorageError):
        return None


def latest_autosave(exclude: str | None = None, root: Path | None = None) -> dict[str, Any] | None:
    """The most recently autosaved design of another browser session worth offering to a new tab:
    ``{"id", "name", "saved_at", "design"}``; ``None`` when there is none, or it is only the
    untouched starting design."""
    folder = drafts_dir(root) / "auto"
    if not folder.is_dir():
        return None
    fresh = fingerprint(new_design())
    for path in sorted(folder.glob("*.json"), key=lambda p: p.stat().st_mtime, reverse=True):
        if path.stem == exclude or not _SESSION_RE.match(path.stem):
            continue
        try:
            blob = json.loads(path.read_text(encoding="utf-8"))
            design = blob["design"]
        except (OSError, KeyError, TypeError, json.JSONDecodeError):
            continue
        if not isinstance(design, dict) or fingerprint(design) == fresh:
            continue
        return {
            "id": path.stem,
            "name": str(design.get("name") or "experiment"),
            "saved_at": float(blob.get("saved_at") or path.stat().st_mtime),
            "design": design,
        }
    return None


def save_draft(name: str, design: dict[str, Any], root: Path | None = None) -> str:
    """Save the design as a named draft (overwrites one of the same name); return the stored name."""
    name = name.strip()
    if not name:
        raise ConfigError("give the draft a name")
    key = safe_filename(name, "draft")
    _write_json(drafts_dir(root) / f"{key}.json", {"name": name, "saved_at": time.time(), "design": design})
    return name


def list_drafts(root: Path | None = None) -> list[dict[str, Any]]:
    """Named drafts, newest first: ``{"key", "name", "saved_at", "clients", "strategy", "dataset"}``."""
    folder = drafts_dir(root)
    out = []
    for path in folder.glob("*.json") if folder.is_dir() else []:
        try:
            blob = json.loads(path.read_text(encoding="utf-8"))
            design = blob["design"]
        except (OSError, KeyError, json.JSONDecodeError):
            continue
        out.append(
            {
                "key": path.stem,
                "name": blob.get("name", path.stem),
                "saved_at": blob.get("saved_at", 0.0),
                "clients": sum(int(c.get("count", 1)) for c in design.get("clients", [])),
                "strategy": (design.get("strategy") or {}).get("name", ""),
                "dataset": dataset_label(design.get("data") or {}),
            }
        )
    return sorted(out, key=lambda d: -d["saved_at"])


def load_draft(key: str, root: Path | None = None) -> dict[str, Any]:
    """A named draft's design.

    :raises ConfigError: no such draft.
    """
    path = drafts_dir(root) / f"{safe_filename(key, 'draft')}.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))["design"]
    except (OSError, KeyError, json.JSONDecodeError):
        raise ConfigError(f"no draft '{key}'; pick one from the list of saved drafts") from None


def delete_draft(key: str, root: Path | None = None) -> None:
    """Remove a named draft (no error if it is already gone)."""
    (drafts_dir(root) / f"{safe_filename(key, 'draft')}.json").unlink(missing_ok=True)
