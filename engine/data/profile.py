"""What the Data page tells a user about a federation before anything trains: how missingness
differs between sites, which columns are mostly missing somewhere, which values look like a
site's private code for "missing", and how different the sites' label mixes are - in units a
clinician reads (percentage points), not divergences.

Pure functions over the loaded dataset and the clients' sample indices; the Data page is the
designer's view of the whole file, so these look across sites (the model pipeline never does:
see :mod:`engine.data.stats`).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from engine.data.base import Dataset

MOSTLY_MISSING = 0.5  # a column missing in at least this share of a site's rows is flagged
CODE_SHARE = 0.05  # a value holding at least this share of a site's values may be a code
CODE_ELSEWHERE = 0.01  # ... if it holds at most this share of the other sites' values
CODE_DISTANCE = 0.5  # ... and lies this many times the others' range outside that range
#: values commonly written for "not measured"; outside the others' whole range they are flagged even
#: when near it
TYPICAL_CODES = frozenset({0.0, -1.0, -9.0, -99.0, -999.0, -9999.0, 9.0, 99.0, 999.0, 9999.0, 99999.0})
MAX_COLUMNS = 60  # columns shown in the missingness heatmap (the most missing first)


def _columns(data: Dataset) -> list[tuple[str, int, bool]]:
    """One ``(file column, first feature position, is a plain number)`` per column of a table."""
    seen: dict[str, tuple[str, int, bool]] = {}
    for j, f in enumerate(data.features or []):
        if f.column not in seen:
            seen[f.column] = (f.column, j, f.kind == "numeric" and f.name == f.column)
    return list(seen.values())


def _flat(data: Dataset) -> np.ndarray:
    """``x`` as ``(samples, features)`` (a window's last row for sequences)."""
    x = data.x.numpy()
    if x.ndim == 3:  # sequence windows (M, W, F): each window's last row
        return x[:, -1, :]
    return x.reshape(len(x), -1)


def missingness(data: Dataset, parts: Sequence[np.ndarray], names: Sequence[str]) -> dict[str, Any]:
    """Share of missing values per client and column, and the columns mostly missing at a site.

    :returns: ``{"columns": [...], "clients": [...], "share": clients x columns (0-1),
        "mostly_missing": [{"column", "client", "share"}]}`` (columns without any missing value
        are left out; at most :data:`MAX_COLUMNS`, the most missing first).
    """
    cols = _columns(data)
    if not cols:
        return {"columns": [], "clients": list(names), "share": [], "mostly_missing": []}
    x = _flat(data)
    first = [j for _, j, _ in cols]
    nan = np.isnan(x[:, first])
    share = np.stack([nan[idx].mean(0) if len(idx) else np.zeros(len(cols)) for idx in parts])
    keep = np.flatnonzero(share.max(0) > 0)
    keep = keep[np.argsort(-share[:, keep].max(0), kind="stable")][:MAX_COLUMNS]
    flagged = []
    for c in keep:
        for k in np.flatnonzero(share[:, c] >= MOSTLY_MISSING):
            flagged.append({"column": cols[c][0], "client": names[k], "share": round(float(share[k, c]), 3)})
    return {
        "columns": [cols[c][0] for c in keep],
        "clients": list(names),
        "share": np.round(share[:, keep], 4).tolist(),
        "mostly_missing": flagged,
    }


def suspicious_codes(
    data: Dataset, parts: Sequence[np.ndarray], names: Sequence[str]
) -> list[dict[str, Any]]:
    """Values that look like a site's private code for "missing": frequent at one site (or the only
    value there), (almost) absent at the others, and far outside the others' range - e.g. 0 for a
    cholesterol the other sites measure between 120 and 320 - or a typical code (0, -1, 99, 999,
    ...) outside everything the others recorded.

    :returns: ``[{"column", "value", "client", "share", "others_low", "others_high"}]``.
    """
    if len(parts) < 2:
        return []
    x = _flat(data)
    plain = [(column, j) for column, j, is_plain in _columns(data) if is_plain]
    if not plain:
        return []
    cols = np.array([j for _, j in plain])
    x = x[:, cols]
    owner = np.full(len(x), -1)
    for k, idx in enumerate(parts):
        owner[idx] = k
    found = []
    for k in range(len(parts)):
        own, others = x[owner == k], x[(owner >= 0) & (owner != k)]
        if len(own) < 5 or len(others) < 5:
            continue
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-missing columns
            lo, hi = np.nanquantile(others, [0.01, 0.99], axis=0)
            own_lo, own_hi = np.nanmin(own, 0), np.nanmax(own, 0)
            their_lo, their_hi = np.nanmin(others, 0), np.nanmax(others, 0)
        spread = np.maximum(hi - lo, 1e-12)
        outside = (own_lo < their_lo) | (own_hi > their_hi)
        enough = ((~np.isnan(own)).sum(0) >= 5) & ((~np.isnan(others)).sum(0) >= 5)
        for c in np.flatnonzero(outside & enough):  # the few columns where a code is possible at all
            mine = own[:, c][~np.isnan(own[:, c])]
            theirs = others[:, c][~np.isnan(others[:, c])]
            uniq, counts = np.unique(mine, return_counts=True)
            for value, count in zip(uniq, counts, strict=True):
                share = count / len(mine)
                if share < CODE_SHARE and len(uniq) > 1:
                    continue
                far = max(lo[c] - value, value - hi[c]) >= CODE_DISTANCE * spread[c]
                typical = value in TYPICAL_CODES and (value < their_lo[c] or value > their_hi[c])
                if not (far or typical):
                    continue
                if np.mean(theirs == value) > CODE_ELSEWHERE:
                    continue
                found.append(
                    {
                        "column": plain[c][0],
                        "value": float(value),
                        "client": names[k],
                        "share": round(float(share), 3),
                        "others_low": float(lo[c]),
                        "others_high": float(hi[c]),
                    }
                )
    return found


def label_skew(hist: np.ndarray, bins: Sequence[str], names: Sequence[str]) -> dict[str, Any]:
    """How far each client's label mix is from the pooled mix, in percentage points.

    The distance of a client is the total variation distance between its label shares and the
    pooled shares (half the sum of the absolute differences), times 100: the share of its samples
    that would have to change label for it to look like the federation. For two classes it is
    simply the gap in the positive rate: a site 94% positive in a federation 61% positive is 33
    points away.

    :returns: ``{"max_points", "mean_points", "client", "class", "client_share", "overall_share",
        "points": per client}`` (shares in percent).
    """
    hist = np.asarray(hist, dtype=float)
    total = hist.sum(0)
    overall = total / max(total.sum(), 1.0)
    points, worst = [], None
    for k, row in enumerate(hist):
        if row.sum() == 0:
            points.append(0.0)
            continue
        p = row / row.sum()
        tv = 50.0 * float(np.abs(p - overall).sum())
        points.append(round(tv, 1))
        if worst is None or tv > worst[0]:
            c = int(
                np.argmax(p - overall)
            )  # its most over-represented class (for two classes: the one it has more of)
            worst = (tv, k, c, 100 * p[c])
    if worst is None:
        return {"max_points": 0.0, "mean_points": 0.0, "points": points}
    tv, k, c, share = worst
    return {
        "max_points": round(tv, 1),
        "mean_points": round(float(np.mean(points)), 1),
        "points": points,
        "client": names[k],
        "class": str(bins[c]),
        "client_share": round(float(share), 1),
        "overall_share": round(float(100 * overall[c]), 1),
    }


def skew_sentence(skew: dict[str, Any], regression: bool = False) -> str:
    """The label skew in words, e.g. "Riverside: 94% 'yes' against 61% overall (33 points)"."""
    if not skew.get("client"):
        return "every client has the same label mix"
    what = f"in target range {skew['class']}" if regression else f"'{skew['class']}'"
    return (
        f"{skew['client']}: {skew['client_share']:.0f}% {what} against {skew['overall_share']:.0f}% overall "
        f"({skew['max_points']:.0f} points)"
    )
