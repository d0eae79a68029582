"""Which files a config may make FedMosaic read, and where it may download.

A design imported in the browser is written by whoever can reach the app, not by the person who
runs it: its ``data.path`` must not read the server's files (``/etc/passwd``, ``../``, a symlink
out of the uploads folder). So ``data.path`` and dataset folders resolve only inside the
*allowed roots*:

- the data directory (``FEDMOSAIC_HOME``, or the run's ``root``), which holds the uploads;
- the project's ``examples/`` folder (the shipped templates' files);
- the folders the operator lists in ``FEDMOSAIC_DATA_ROOTS`` (separated by ``os.pathsep``).

Anything else is refused with one message that shows nothing of the file: not its content, not
whether it exists. Files are downloaded only into the data directory.

The command line is run by the owner of the files it names, so it reads any path given to it:
``python -m engine`` runs inside :func:`trusted_paths`. Confinement is the default everywhere
else: the app, the engine API the pages call, and runs they launch (the run manager carries the
launcher's context to its worker threads).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import TYPE_CHECKING

from engine.errors import DataError

if TYPE_CHECKING:
    from engine.data.config import DataConfig

PROJECT = Path(__file__).resolve().parent.parent
ENV_ROOTS = "FEDMOSAIC_DATA_ROOTS"

_trusted: ContextVar[bool] = ContextVar("fedmosaic_trusted_paths", default=False)


class AccessError(DataError):
    """A config names a file or folder outside the allowed roots."""


REFUSED = (
    "the file or folder given lies outside the folders FedMosaic may read here (its data directory "
    "with the uploads, the project's examples/ folder, and the folders listed in "
    f"{ENV_ROOTS}); upload the file on the Data page instead, or ask whoever runs FedMosaic to "
    f"add its folder to {ENV_ROOTS}"
)


@contextmanager
def trusted_paths() -> Iterator[None]:
    """Within this block (and runs launched from it) configs may name any path: for the command
    line and scripts run by the owner of the files."""
    token = _trusted.set(True)
    try:
        yield
    finally:
        _trusted.reset(token)


def paths_trusted() -> bool:
    """Whether the current context may read any path (:func:`trusted_paths`)."""
    return _trusted.get()


def _resolved(path: Path) -> Path | None:
    try:
        return path.expanduser().resolve()
    except (OSError, ValueError, RuntimeError):  # a NUL byte, a symlink loop, a name too long
        return None


def allowed_roots(root: Path | None = None) -> list[Path]:
    """The folders configs may read from: ``root`` (the run's data directory), the default data
    directory, ``examples/`` and :data:`ENV_ROOTS`; resolved, without duplicates."""
    from engine.tracking.storage import default_data_dir

    found: list[Path] = []
    extra = [p for p in os.environ.get(ENV_ROOTS, "").split(os.pathsep) if p.strip()]
    for candidate in (root, default_data_dir(), PROJECT / "examples", *map(Path, extra)):
        resolved = _resolved(Path(candidate)) if candidate is not None else None
        if resolved is not None and resolved not in found:
            found.append(resolved)
    return found


def within(path: Path, roots: list[Path]) -> bool:
    """Whether ``path`` (symlinks followed) lies inside one of ``roots``."""
    resolved = _resolved(path)
    return resolved is not None and any(resolved == r or resolved.is_relative_to(r) for r in roots)


def confine(cfg: DataConfig, root: Path | None) -> DataConfig:
    """``cfg`` with ``data.path`` replaced by the absolute location it names inside the allowed
    roots (a relative path is tried against the working directory, then the data directory, as
    the loaders do; a candidate outside the roots is ignored, existing or not). Unchanged when
    paths are trusted or no path is set.

    :raises AccessError: no candidate lies inside the allowed roots.
    """
    if paths_trusted() or not cfg.path:
        return cfg
    given = Path(cfg.path)
    candidates = [given] if given.expanduser().is_absolute() else [Path.cwd() / given]
    if root is not None and not given.expanduser().is_absolute():
        candidates.append(Path(root) / given)
    roots = allowed_roots(root)
    inside = [r for r in (_resolved(c) for c in candidates) if r is not None and within(r, roots)]
    if not inside:
        raise AccessError(REFUSED)
    chosen = next((c for c in inside if c.exists()), inside[0])
    return cfg.model_copy(update={"path": str(chosen)})


def check_download_target(folder: Path, root: Path) -> None:
    """Downloads go only into the data directory (unless paths are trusted).

    :raises AccessError: ``folder`` lies outside ``root``.
    """
    if paths_trusted() or within(folder, [r for r in [_resolved(Path(root))] if r is not None]):
        return
    raise AccessError(
        "FedMosaic downloads dataset files only into its data directory: clear the folder "
        "field (data.path) to download there, or put the files into the folder yourself"
    )
