"""Where each config field is on the pages, in the words the pages use.

Engine errors name config keys (``set data.encoding to cp1252``): that is what a CLI user edits.
A page shows the same message with every known key replaced by its control's label and place
(``set **Text encoding** (Data > File > Reading the file) to cp1252``) through :func:`for_page`,
and the pages take their widget labels from :data:`FIELDS` too, so the two never drift apart.
One table; add a row when a page shows a new config field.
"""

from __future__ import annotations

import re
from pathlib import PurePath
from typing import Any

#: config key -> (label of the control as the page shows it, where it is)
FIELDS: dict[str, tuple[str, str]] = {
    "data.dataset": ("Dataset", "Data"),
    "data.path": ("the file", "Data > File"),
    "data.target": ("Target", "Data > File"),
    "data.task": ("Task", "Data > File"),
    "data.columns": ("the Columns table", "Data > File"),
    "data.encoding": ("Text encoding", "Data > File > Reading the file"),
    "data.delimiter": ("Separator", "Data > File > Reading the file"),
    "data.decimal": ("Decimal mark", "Data > File > Reading the file"),
    "data.sheet": ("Sheet", "Data > File > Reading the file"),
    "data.max_file_mb": ("Largest file (MB)", "Data > File > Reading the file"),
    "data.split_column": ("Train/test column", "Data > Split across clients"),
    "data.statistics": ("Preprocessing statistics", "Data > Split across clients"),
    "data.partition.method": ("Partition method", "Data > Split across clients"),
    "data.partition.column": ("Split by column", "Data > Split across clients"),
    "data.partition": ("Partition method", "Data > Split across clients"),
    "partition.column": ("Split by column", "Data > Split across clients"),
    "partition.min_size": ("Min size", "Data > Split across clients"),
    "partition.small": ("Small", "Data > Split across clients"),
    "data.test_fraction": ("Test fraction", "Data > Held-out sets and sampling"),
    "data.validation_fraction": ("Validation fraction", "Data > Held-out sets and sampling"),
    "data.global_test_fraction": ("Global test fraction", "Data > Held-out sets and sampling"),
    "data.public_fraction": ("Public fraction", "Data > Held-out sets and sampling"),
    "data.max_samples": ("Max samples", "Data > Held-out sets and sampling"),
    "data.image_shape": ("Read the feature columns as an image", "Data > File > Time series windows, images"),
    "data.window.time_column": ("Time column", "Data > File > Time series windows, images"),
    "data.window.length": ("Length", "Data > File > Time series windows, images"),
    "data.window.horizon": ("Horizon", "Data > File > Time series windows, images"),
    "data.window": ("Time series windows", "Data > File > Time series windows, images"),
    "primary_metric": ("Primary metric", "Launch > Run settings"),
}

_KEY = re.compile(
    r"(?<![\w.])(" + "|".join(re.escape(k) for k in sorted(FIELDS, key=len, reverse=True)) + r")(?![\w])"
)


def label(key: str) -> str:
    """The label of the control that edits config ``key`` (the key itself when none does)."""
    return FIELDS[key][0] if key in FIELDS else key


def for_page(message: str) -> str:
    """``message`` with every known config key replaced by its control, as ``**Label** (where)``
    (the place named once per message)."""
    said: set[str] = set()

    def swap(m: re.Match[str]) -> str:
        name, where = FIELDS[m.group(1)]
        shown = name if name.startswith("the ") else f"**{name}**"
        if where in said:
            return shown
        said.add(where)
        return f"{shown} ({where})"

    return _KEY.sub(swap, message)


def dataset_label(data: dict[str, Any]) -> str:
    """A ``data`` section's dataset as run lists show it: a user file (``csv``) by its file name,
    a built-in dataset by its name."""
    name = str(data.get("dataset") or "")
    path = data.get("path")
    if name == "csv" and path:
        return PurePath(str(path)).name or name
    return name
