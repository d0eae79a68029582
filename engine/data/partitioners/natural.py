"""``natural``: one client per distinct value of a side column (hospital, city, device id), the
split real federations have. The dataset exposes such columns in :attr:`Dataset.columns` (the
CSV loader keeps the chosen column out of the features; ``traffic`` has ``city``; ``shapes`` has
``domain``). Clients are the values in sorted order, so the roster must have exactly as many
clients as values: :func:`natural_groups` lists them so the pages can size and name the roster.

Values with fewer than ``min_size`` samples are an error by default, or are dropped, or are
merged into one client called ``other``.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field

from engine.data.base import PARTITIONERS, Dataset, Partitioner, PartitionParams
from engine.errors import DataError

OTHER = "other"


class NaturalParams(PartitionParams):
    column: str = Field(
        ..., description="side column: one client per distinct value (hospital, city, device)"
    )
    min_size: int = Field(1, ge=1, description="values with fewer samples in the whole dataset are 'small'")
    small: Literal["error", "drop", "merge"] = Field(
        "error", description="small values: an error, dropped, or merged into one client called 'other'"
    )


def groups_of(data: Dataset, params: NaturalParams) -> tuple[list[str], np.ndarray]:
    """Client names (sorted values, plus ``other`` when merging) and each sample's client number
    (-1 for samples of dropped values).

    :raises DataError: missing column, one value only, small values with ``small="error"``.
    """
    col = params.column
    if col not in data.columns:
        have = ", ".join(sorted(data.columns)) or "none"
        raise DataError(
            f"dataset '{data.name}' has no column '{col}' for a natural partition (its columns: "
            f"{have}); for a CSV set data.partition.column to one of the file's columns"
        )
    values = np.asarray(data.columns[col]).astype(str)
    names, codes, counts = np.unique(values, return_inverse=True, return_counts=True)
    small = counts < params.min_size
    if small.any() and params.small == "error":
        listed = ", ".join(f"'{n}' ({c})" for n, c in zip(names[small][:5], counts[small][:5], strict=True))
        raise DataError(
            f"natural: values of '{col}' with fewer than min_size={params.min_size} samples: "
            f'{listed}; set partition.small to "drop" or "merge", or lower min_size'
        )
    kept = [str(n) for n in names[~small]]
    new_code = np.full(len(names), -1)
    new_code[~small] = np.arange(len(kept))
    if small.any() and params.small == "merge":
        new_code[small] = len(kept)
        kept.append(OTHER)
    if len(kept) < 2:
        only = kept[0] if kept else "none"
        raise DataError(
            f"natural: column '{col}' has a single value ('{only}') with enough samples, so it "
            f"makes one client; choose a column with several values or another partition method"
        )
    return kept, new_code[codes]


@PARTITIONERS.register("natural")
class Natural(Partitioner):
    description = "One client per value of a column (hospital, city, device id): the real-world split."
    Params = NaturalParams

    def split(
        self,
        data: Dataset,
        index: np.ndarray,
        n_clients: int,
        rng: np.random.Generator,
        shares: list[float | None],
    ) -> list[np.ndarray]:
        p: NaturalParams = self.params  # type: ignore[assignment]
        names, assign = groups_of(data, p)
        if n_clients != len(names):
            listed = ", ".join(names[:10]) + (" ..." if len(names) > 10 else "")
            raise DataError(
                f"natural partition on '{p.column}' has {len(names)} values ({listed}): "
                f"the roster needs exactly {len(names)} clients, it has {n_clients}"
            )
        owner = assign[index]
        order = np.argsort(owner, kind="stable")
        bounds = np.searchsorted(owner[order], np.arange(len(names) + 1))
        parts = [np.sort(index[order[bounds[k] : bounds[k + 1]]]) for k in range(len(names))]
        for name, part in zip(names, parts, strict=True):
            if len(part) == 0:
                raise DataError(
                    f"natural: value '{name}' of '{p.column}' has no training samples left "
                    f"after the global test and public sets; raise partition.min_size with "
                    f'small="merge" or "drop", or lower data.global_test_fraction'
                )
        return parts
