"""Text that leaves FedMosaic for another program: a spreadsheet, a terminal, a Markdown renderer.

Names, tags and messages come from users (a config, an imported design, a rename). Written as
they are they can act instead of being read: a CSV cell ``=HYPERLINK(...)`` is a formula in Excel
or LibreOffice (OWASP "CSV injection"), ``\\x1b]8;;...`` is a terminal hyperlink or a screen
clear, ``![x](https://...)`` makes the browser fetch a remote image. Every writer of such text
goes through one of these functions.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
"""First characters that make a spreadsheet read a cell as a formula (or shift it)."""


def spreadsheet_cell(value: Any) -> Any:
    """A text cell that starts like a formula gets a leading apostrophe, which spreadsheets show
    as text (``=1+1`` -> ``'=1+1``); carriage returns become line feeds (which the CSV writer
    quotes; a bare CR it would leave unquoted, splitting the row). Other values are unchanged."""
    if not isinstance(value, str):
        return value
    value = value.replace("\r\n", "\n").replace("\r", "\n")
    return "'" + value if value.startswith(FORMULA_START) else value


def spreadsheet_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` whose text cells and column names cannot run as formulas."""
    import pandas as pd

    out = frame.copy()
    for column in out.columns:
        if out[column].dtype == object or pd.api.types.is_string_dtype(out[column].dtype):
            out[column] = out[column].map(spreadsheet_cell)
    out.columns = [spreadsheet_cell(c) for c in out.columns]
    return out


def csv_text(frame: pd.DataFrame, **options: Any) -> str:
    """``frame`` as CSV text safe to open in a spreadsheet (``index=False`` unless given)."""
    options.setdefault("index", False)
    return spreadsheet_safe(frame).to_csv(**options)


def write_csv(frame: pd.DataFrame, path: Path, **options: Any) -> None:
    """Write ``frame`` to ``path`` as spreadsheet-safe CSV (``OSError`` on failure)."""
    options.setdefault("index", False)
    spreadsheet_safe(frame).to_csv(path, **options)


_TERMINAL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069]")


def terminal_safe(text: str) -> str:
    """``text`` without control characters a terminal would act on (escape sequences, bell,
    backspace, bidirectional overrides); line feeds, tabs and carriage returns stay."""
    return _TERMINAL.sub("", text)


_MARKDOWN = re.compile(r"([\\`\[\]<>$])")
_AUTOLINK = re.compile(r"(?i)(?<=[a-z0-9])(?=://)|(?<=\bwww)(?=\.)|(?<=@)")
_BREAK = "\u200b"  # zero-width space: the renderer finds links in text after parsing, so only a break in
# the address itself stops it (a backslash escape does not)


def markdown_plain(text: Any) -> str:
    """``text`` made inert for a Markdown renderer (``st.markdown``, titles, captions, errors,
    toasts): no link, image, autolink (``http://``, ``www.``, e-mail), code span, LaTeX, colour or
    icon directive can come from a name or a message; one line, control characters dropped.
    Emphasis marks stay (harmless), so messages naming ``data.max_samples`` read as written."""
    flat = " ".join(terminal_safe(str(text)).split())
    return _AUTOLINK.sub(_BREAK, _MARKDOWN.sub(r"\\\1", flat))


def chart_text(text: Any) -> str:
    """``text`` for a Plotly label (legend, axis, hover): Plotly reads ``<a href>``, ``<b>``... in
    labels, so a name's angle brackets and ampersands are written as entities and show as typed."""
    return (
        " ".join(terminal_safe(str(text)).split())
        .replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
    )


def safe_filename(name: str, default: str = "export") -> str:
    """A file name with only letters, digits, ``-``, ``_`` and ``.``; no path parts, no leading dot."""
    name = Path(str(name)).name
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._")
    return name[:120] or default


def clean_name(text: Any) -> str:
    """A name or tag on one line, without control characters (escape sequences, bidi overrides)."""
    return " ".join(terminal_safe(str(text)).split())


def clean_tags(tags: Iterable[str]) -> list[str]:
    if isinstance(tags, str):
        tags = [tags]
    out: list[str] = []
    for tag in tags:
        tag = clean_name(tag)[:40]
        if tag and tag not in out:
            out.append(tag)
    return out
