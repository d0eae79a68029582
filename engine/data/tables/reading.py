"""Reading a user's table file into a DataFrame: CSV/TSV text (encoding, separator and decimal mark
detected, each overridable), Excel ``.xlsx`` (openpyxl) and Parquet (pyarrow).

The format comes from the file's first bytes, not its name: ``PK`` (a zip: ``.xlsx``), ``PAR1``
(Parquet), the OLE header of a legacy ``.xls`` (refused with the fix), anything else is text.
Text is decoded as UTF-8 when it is valid UTF-8; otherwise the encoding is guessed with
charset-normalizer, preferring Windows-1252 (what Western European Excel exports use) whenever it
is among the equally plausible candidates. The separator is the one that gives the same number of
fields on every sampled line; the decimal mark is a comma when the separator is not a comma and
the sampled numbers are written ``12,5``.

Nothing is evaluated or unpickled: text is parsed as text, Excel cells are read as values (no
formulas run), Parquet columns as Arrow arrays.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from engine.errors import DataError

DELIMITERS = (",", ";", "\t", "|")
NA_VALUES = ["?"]  # on top of pandas' defaults ("", "NA", "N/A", "null", "NaN", ...)
FORMATS = ("csv", "xlsx", "parquet")
#: File name endings an upload may have (the format itself is read from the content).
EXTENSIONS = (".csv", ".tsv", ".txt", ".xlsx", ".parquet", ".pq")
_HEAD = 65536
_COMMA_DECIMAL = re.compile(r"^\s*[-+]?\d+,\d+\s*$")
_DOT_DECIMAL = re.compile(r"^\s*[-+]?\d*\.\d+([eE][-+]?\d+)?\s*$")


def delimiter_name(d: str | None) -> str:
    """A separator as the page names it."""
    return {"\t": "tab", ",": "',' (comma)", ";": "';' (semicolon)", "|": "'|' (pipe)"}.get(d or "", f"'{d}'")


@dataclass
class Table:
    """A parsed table file and how it was read (``detected``: what was guessed rather than given)."""

    frame: pd.DataFrame
    name: str
    format: str
    size_mb: float
    delimiter: str | None = None
    encoding: str | None = None
    decimal: str | None = None
    sheet: str | None = None
    sheets: list[str] = field(default_factory=list)
    detected: list[str] = field(default_factory=list)

    def how(self) -> dict[str, object]:
        """JSON-able summary for the report: format, separator, encoding, decimal mark, sheet."""
        return {
            "format": self.format,
            "delimiter": self.delimiter,
            "encoding": self.encoding,
            "decimal": self.decimal,
            "sheet": self.sheet,
            "sheets": self.sheets,
            "detected": self.detected,
        }


def sniff_format(head: bytes) -> str:
    """``xlsx``, ``parquet`` or ``csv`` from a file's first bytes.

    :raises DataError: a legacy binary ``.xls`` workbook.
    """
    if head.startswith(b"PK\x03\x04"):
        return "xlsx"
    if head.startswith(b"PAR1"):
        return "parquet"
    if head.startswith(b"\xd0\xcf\x11\xe0"):
        raise DataError(
            "this is a legacy Excel .xls workbook; open it in Excel or LibreOffice and save it as "
            ".xlsx or CSV, then upload that file"
        )
    return "csv"


def detect_encoding(raw: bytes) -> str:
    """The text encoding of ``raw``: UTF-8 (with or without BOM) or UTF-16 when valid, else the
    most plausible one charset-normalizer finds (Windows-1252 when it is among the most plausible)."""
    if raw.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if raw[:2] in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE):
        return "utf-16"
    try:
        raw.decode("utf-8")
        return "utf-8"
    except UnicodeDecodeError:
        pass
    import charset_normalizer

    matches = list(charset_normalizer.from_bytes(raw[:500_000]))
    candidates: list[str] = []
    if matches:
        least = min(m.chaos for m in matches)
        calm = [m for m in matches if m.chaos <= least + 1e-9]
        if any("cp1252" in m.could_be_from_charset for m in calm):
            candidates.append("cp1252")
        candidates.append(max(calm, key=lambda m: m.coherence).encoding)
    for enc in [*candidates, "cp1252", "latin-1"]:
        try:
            raw.decode(enc)
            return codecs.lookup(enc).name
        except UnicodeDecodeError:
            continue
    return "latin-1"  # decodes any byte


def _sniff_delimiter(head: str) -> str | None:
    """The separator that gives the same number (> 1) of fields on every sampled line."""
    lines = head.splitlines()[:50]
    if len(lines) > 1 and not head.endswith(("\n", "\r")):
        lines = lines[:-1]  # the last line may be cut
    best, best_fields = None, 1
    for d in DELIMITERS:
        counts = {len(row) for row in csv.reader(lines, delimiter=d) if row}
        if len(counts) == 1 and (fields := counts.pop()) > best_fields:
            best, best_fields = d, fields
    return best


def _sniff_decimal(head: str, sep: str) -> str:
    """``","`` when the sampled fields write numbers as ``12,5`` (and the separator is not a comma)."""
    if sep == ",":
        return "."
    lines = head.splitlines()[1:200]
    comma = dot = 0
    for row in csv.reader(lines, delimiter=sep):
        for cell in row:
            if _COMMA_DECIMAL.match(cell):
                comma += 1
            elif _DOT_DECIMAL.match(cell):
                dot += 1
    return "," if comma > dot else "."


def _decode_error(raw: bytes, encoding: str, name: str) -> DataError:
    suggestion = detect_encoding(raw)
    encoding = "utf-8" if encoding == "utf-8-sig" else encoding
    try:
        raw.decode(encoding)
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        return DataError(
            f"{name}: line {line} is not valid {encoding} text (byte 0x{raw[exc.start]:02x}); "
            f"set data.encoding to {suggestion} (or auto), or re-save the file as UTF-8"
        )
    return DataError(
        f"{name}: cannot decode the file as {encoding}; set data.encoding to {suggestion} (or auto)"
    )


def read_table(
    source: str | Path | bytes,
    *,
    delimiter: str | None = None,
    encoding: str = "auto",
    decimal: str = "auto",
    sheet: str | None = None,
    max_file_mb: float = 200.0,
    name: str | None = None,
) -> Table:
    """Parse a table file (a path, or the bytes of an upload) into a DataFrame.

    :param encoding: ``auto`` (detected) or a codec name (text files only).
    :param delimiter: ``None`` (detected) or one character (text files only).
    :param decimal: ``auto``, ``.`` or ``,`` (text files only).
    :param sheet: Excel sheet name (default: the first).
    :raises DataError: too large, empty, header only, undecodable, ragged rows, wrong separator,
        unreadable workbook or Parquet file; each names the setting to change.
    """
    if isinstance(source, (bytes, bytearray)):
        raw = bytes(source)
        name = name or "uploaded file"
        size = len(raw)
    else:
        path = Path(source)
        name = name or path.name
        if not path.is_file():
            raise DataError(f"file not found: {path}; check data.path")
        size = path.stat().st_size
        if size / 1e6 > max_file_mb:
            raw = b""
        else:
            raw = path.read_bytes()
    size_mb = size / 1e6
    if size_mb > max_file_mb:
        raise DataError(
            f"{name} is {size_mb:.1f} MB, over the limit data.max_file_mb = {max_file_mb:g}; "
            f"raise data.max_file_mb or use a smaller file"
        )
    if not raw.strip():
        raise DataError(f"{name} is empty; choose a file with a header line and data rows")
    kind = sniff_format(raw[:8])
    if kind == "xlsx":
        table = _read_xlsx(raw, name, sheet, size_mb)
    elif kind == "parquet":
        table = _read_parquet(raw, name, size_mb)
    else:
        table = _read_text(raw, name, delimiter, encoding, decimal, size_mb)
    frame = table.frame
    frame.columns = [str(c).strip() for c in frame.columns]
    if frame.shape[1] == 1 and kind == "csv":
        header = frame.columns[0]
        others = [d for d in DELIMITERS if d != table.delimiter and d in header]
        if others:
            raise DataError(
                f"{name}: reading with separator {delimiter_name(table.delimiter)} gives one column "
                f"'{header[:60]}', whose name contains {delimiter_name(others[0])}; set data.delimiter to "
                f"{delimiter_name(others[0])} (or auto)"
            )
    if frame.shape[1] <= 1:
        header = frame.columns[0] if frame.shape[1] else ""
        raise DataError(
            f"{name} has a single column '{header[:60]}'; a dataset needs a target and at "
            f"least one feature column (for text files: separated by , ; tab or |)"
        )
    if len(frame) == 0:
        raise DataError(f"{name} has a header but no data rows; add rows below the header line")
    return table


def _no_duplicate_columns(head: str, sep: str, name: str) -> None:
    """Refuse a header that names a column twice (pandas would silently rename it ``f1.1``)."""
    from collections import Counter

    try:
        header = next(csv.reader(io.StringIO(head), delimiter=sep, skipinitialspace=True), [])
    except csv.Error:
        return
    if "\n" not in head and "\r" not in head:  # the header goes on past what was read: its last name is cut
        header = header[:-1]
    counts = Counter(c.strip() for c in header if c.strip())  # empty names become "Unnamed: N"
    twice = [c for c, n in counts.items() if n > 1]
    if twice:
        shown = ", ".join(f"'{c[:40]}'" for c in twice[:5])
        raise DataError(f"{name}: the header names {shown} more than once; give every column its own name")


def _read_text(
    raw: bytes, name: str, delimiter: str | None, encoding: str, decimal: str, size_mb: float
) -> Table:
    detected = []
    if encoding.lower() == "auto":
        enc = detect_encoding(raw)
        detected.append("encoding")
    else:
        enc = "utf-8-sig" if encoding.lower().replace("_", "-") in ("utf-8", "utf8") else encoding
    head = raw[:_HEAD].decode(enc, errors="replace")
    sep = delimiter
    if sep is None:
        sep = _sniff_delimiter(head) or ","
        detected.append("delimiter")
    dec = decimal
    if dec not in (".", ","):
        dec = _sniff_decimal(head, sep)
        detected.append("decimal")
    if dec == sep:
        raise DataError(
            f"{name}: the decimal mark and the separator are both {delimiter_name(sep)}; "
            f"set data.decimal or data.delimiter to something else"
        )
    try:
        with warnings.catch_warnings():  # rows longer than the header: pandas would drop the extra fields
            warnings.simplefilter("error", pd.errors.ParserWarning)  # (or make the first column an index)
            frame = pd.read_csv(
                io.BytesIO(raw),
                sep=sep,
                encoding=enc,
                decimal=dec,
                na_values=NA_VALUES,
                skipinitialspace=True,
                low_memory=False,
                index_col=False,
            )
    except pd.errors.ParserWarning:
        raise DataError(
            f"{name}: some rows have more fields than the header has names (separator "
            f"{delimiter_name(sep)}); fix the extra separators or quoting, or set data.delimiter"
        ) from None
    except UnicodeDecodeError:
        raise _decode_error(raw, enc, name) from None
    except pd.errors.EmptyDataError:
        raise DataError(f"{name} has no columns; choose a file with a header line and data rows") from None
    except pd.errors.ParserError as exc:
        m = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(exc))
        where = (
            f"line {m.group(2)} has {m.group(3)} fields but the header has {m.group(1)}"
            if m
            else str(exc).strip()
        )
        raise DataError(
            f"{name}: {where} (separator {delimiter_name(sep)}); fix the row's quoting or "
            f"extra separators, or set data.delimiter"
        ) from None
    _no_duplicate_columns(head, sep, name)
    shown = "utf-8" if enc == "utf-8-sig" else codecs.lookup(enc).name.replace("_", "-")
    return Table(frame, name, "csv", size_mb, delimiter=sep, encoding=shown, decimal=dec, detected=detected)


def _read_xlsx(raw: bytes, name: str, sheet: str | None, size_mb: float) -> Table:
    try:
        book = pd.ExcelFile(io.BytesIO(raw), engine="openpyxl")
    except ImportError:
        raise DataError("reading .xlsx files needs openpyxl: pip install openpyxl") from None
    except Exception as exc:  # noqa: BLE001 - a damaged or non-Excel zip: say so, with the fix
        raise DataError(
            f"{name} looks like a zip/Excel file but cannot be read as .xlsx "
            f"({type(exc).__name__}); re-save it from Excel, or export it as CSV"
        ) from None
    sheets = [str(s) for s in book.sheet_names]
    if not sheets:
        raise DataError(f"{name} has no sheets")
    chosen = sheet if sheet is not None else sheets[0]
    if chosen not in sheets:
        raise DataError(f"{name} has no sheet '{chosen}'; its sheets: {', '.join(sheets)}; set data.sheet")
    try:
        frame = pd.read_excel(book, sheet_name=chosen)
    except Exception as exc:  # noqa: BLE001
        raise DataError(
            f"{name}: sheet '{chosen}' cannot be read ({type(exc).__name__}: {exc}); re-save it "
            f"or export it as CSV"
        ) from None
    header = (
        [
            str(c).strip()
            for c in pd.read_excel(book, sheet_name=chosen, header=None, nrows=1).iloc[0]
            if str(c) != "nan"
        ]
        if len(frame.columns)
        else []
    )
    twice = sorted({c for c in header if header.count(c) > 1})
    if twice:  # pandas would silently rename the second one 'name.1'
        shown = ", ".join(f"'{c[:40]}'" for c in twice[:5])
        raise DataError(f"{name}: the header names {shown} more than once; give every column its own name")
    frame = frame.dropna(axis=0, how="all")  # spreadsheets often end with formatted empty rows
    frame = frame.reset_index(drop=True)
    return Table(
        frame,
        name,
        "xlsx",
        size_mb,
        sheet=chosen,
        sheets=sheets,
        detected=[] if sheet is not None else ["sheet"],
    )


def _read_parquet(raw: bytes, name: str, size_mb: float) -> Table:
    try:
        frame = pd.read_parquet(io.BytesIO(raw), engine="pyarrow")
    except ImportError:
        raise DataError("reading Parquet files needs pyarrow: pip install pyarrow") from None
    except Exception as exc:  # noqa: BLE001 - a damaged file: say so, with the fix
        raise DataError(
            f"{name} cannot be read as Parquet ({type(exc).__name__}); re-export it, or export it as CSV"
        ) from None
    frame = frame.reset_index(drop=frame.index.name is None)
    return Table(frame, name, "parquet", size_mb)
