"""Noticing that a table's columns are the pixels of images (a label column and 784 pixel columns
``px0..px783``), so the Data page can offer to read them as images (``data.image_shape``) instead
of training tabular models on flattened pixels.

The guess uses only the column plans the inspection already made (names, inferred types, missing
counts, smallest and largest values): no second read of the file, linear in the number of columns.
Its rules (all must hold; documented in ``docs/data.md``):

1. **Which columns**: the table's feature columns (the target, the partition/window/time columns,
   the train/test column and ignored or identifier-like columns are not features). Without a
   chosen target, the suggested one is left out too.
2. **Names**: the pixel columns are the feature columns whose names share one prefix followed by a
   number (``px12``, ``pixel12``, ``p_12``, or a bare ``12``; the prefix may be empty), and in file
   order their numbers run 0, 1, ..., n-1 or 1, 2, ..., n without gap, repeat or reordering; or,
   for a grid, ``<prefix><row><sep><column>`` (``1x1 .. 28x28``, ``pixel_0_0 ..``; ``sep`` one of
   ``x _ -``) row by row, rows and columns each counted from 0 or from 1. At most
   :data:`MAX_OTHERS` other feature columns may sit beside them (a client or a split column);
   reading as images leaves those out of the features.
3. **Count**: numbered columns: n = S*S with S >= 8 is one S x S grayscale image (``[1, S, S]``);
   n = 3*S*S with S >= 8 is an S x S colour image stored **channels first** (``[3, S, S]``: the
   first S*S columns are the red plane row by row, then green, then blue), which is how
   :func:`engine.data.tables.columns.shape_input` reshapes the row. A grid gives its own
   H x W (grayscale), each side >= 8.
4. **Values**: every pixel column is numeric (inferred, not overridden to another type), has no
   missing cell, and all values lie within [0, 255] (0-1 floats and 0-255 integers both pass;
   0-255 values are divided by 255 when read as images).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass
from typing import Any

from engine.data.tables.infer import ColumnPlan

MIN_SIDE = 8  # the smallest image side guessed (8 x 8 digits); smaller squares are more often tables
MAX_OTHERS = 8  # feature columns beside the pixels (client, split, ...) that reading as images sets aside
_NUMBERED = re.compile(r"^(.*?)(\d+)$")
_GRID = re.compile(r"^(\D*?)(\d+)([x×_-])(\d+)$")


@dataclass(frozen=True)
class ImageGuess:
    """A table read as images: ``shape`` ``[C, H, W]``, the pixel columns in file order, the other
    feature columns that reading as images leaves out, and a one-line reason in the page's words."""

    shape: list[int]
    pixels: list[str]
    others: list[str]
    low: float
    high: float
    reason: str

    def summary(self) -> dict[str, Any]:
        """JSON-able view for the inspection report (the pixel columns by their first and last)."""
        return {
            "shape": self.shape,
            "count": len(self.pixels),
            "first": self.pixels[0],
            "last": self.pixels[-1],
            "others": self.others,
            "low": self.low,
            "high": self.high,
            "reason": self.reason,
        }


def _numbered_shape(indices: list[int]) -> list[int] | None:
    """``[C, S, S]`` when ``indices`` run k, k+1, ... from k = 0 or 1 and their count is S*S or 3*S*S."""
    n, start = len(indices), indices[0]
    if start not in (0, 1) or indices != list(range(start, start + n)):
        return None
    for channels in (1, 3):
        side = math.isqrt(n // channels)
        if n % channels == 0 and side * side * channels == n and side >= MIN_SIDE:
            return [channels, side, side]
    return None


def _grid_shape(cells: list[tuple[int, int]]) -> list[int] | None:
    """``[1, H, W]`` when ``cells`` run row by row over a full H x W grid counted from 0 or 1."""
    r0, c0 = cells[0]
    if r0 not in (0, 1) or c0 not in (0, 1):
        return None
    width = next((i for i, (r, _) in enumerate(cells) if r != r0), len(cells))
    if width < MIN_SIDE or len(cells) % width:
        return None
    height = len(cells) // width
    expected = [(r0 + i // width, c0 + i % width) for i in range(len(cells))]
    return [1, height, width] if height >= MIN_SIDE and cells == expected else None


def _pixel_block(names: list[str]) -> tuple[list[str], list[int]] | None:
    """The pixel columns among ``names`` (file order) and the image shape their names give."""
    grid = [_GRID.match(n) for n in names]
    keys = Counter((m[1], m[3]) for m in grid if m)
    if keys:
        (prefix, sep), count = keys.most_common(1)[0]
        if count >= MIN_SIDE * MIN_SIDE:
            chosen = [(n, m) for n, m in zip(names, grid, strict=True) if m and (m[1], m[3]) == (prefix, sep)]
            shape = _grid_shape([(int(m[2]), int(m[4])) for _, m in chosen])
            if shape is not None:
                return [n for n, _ in chosen], shape
    numbered = [_NUMBERED.match(n) for n in names]
    prefixes = Counter(m[1] for m in numbered if m)
    if not prefixes:
        return None
    prefix, count = prefixes.most_common(1)[0]
    if count < MIN_SIDE * MIN_SIDE:
        return None
    chosen_n = [(n, int(m[2])) for n, m in zip(names, numbered, strict=True) if m and m[1] == prefix]
    shape = _numbered_shape([i for _, i in chosen_n])
    return ([n for n, _ in chosen_n], shape) if shape is not None else None


def _number(v: float) -> str:
    """A value as the reason shows it: to two decimals (0.99990 -> 1), whole numbers bare."""
    v = round(float(v), 2)
    return f"{int(v)}" if v.is_integer() else f"{v:g}"


def guess_image_shape(plans: list[ColumnPlan], leave_out: str | None = None) -> ImageGuess | None:
    """Whether the feature columns among ``plans`` look like the pixels of images (the module's
    rules), and which shape.

    :param plans: every column's plan (as the inspection made them; only ``role == "feature"``
        columns are looked at).
    :param leave_out: a column that is not a feature even if planned as one (the suggested target
        while none is chosen).
    :returns: the guess, or ``None`` when a rule fails.
    """
    features = [p for p in plans if p.role == "feature" and p.name != leave_out]
    if len(features) < MIN_SIDE * MIN_SIDE:
        return None
    found = _pixel_block([str(p.name).strip() for p in features])
    if found is None:
        return None
    names, shape = found
    pixel_set = set(names)
    pixels = [p for p in features if str(p.name).strip() in pixel_set]
    others = [p.name for p in features if str(p.name).strip() not in pixel_set]
    if len(others) > MAX_OTHERS:
        return None
    if any(p.type != "numeric" or p.missing or p.low is None or p.high is None for p in pixels):
        return None
    low, high = min(p.low for p in pixels), max(p.high for p in pixels)  # type: ignore[type-var]
    if not (0 <= low and high <= 255):
        return None
    c, h, w = shape
    kind = "grayscale images" if c == 1 else "colour images (channels first: red, green, blue planes)"
    reason = (
        f"These {len(pixels):,} columns look like {h}×{w} {kind} "
        f"({pixels[0].name}…{pixels[-1].name}, values {_number(low)}–{_number(high)})"
    )
    return ImageGuess(shape, [p.name for p in pixels], others, float(low), float(high), reason)
