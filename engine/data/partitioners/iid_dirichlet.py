"""Partitioners: how a dataset's samples are dealt out to clients.

- ``iid``: a uniform random split (McMahan et al. 2017).
- ``dirichlet``: label skew; each class is spread over clients by proportions drawn from
  Dirichlet(alpha) (Hsu et al. 2019, arXiv:1909.06335). Small alpha -> each client sees few classes.
"""

from __future__ import annotations

import numpy as np
from pydantic import Field

from engine.data.base import PARTITIONERS, Dataset, Partitioner, PartitionParams
from engine.errors import DataError


def _shares_to_sizes(n: int, shares: list[float | None]) -> np.ndarray | None:
    """Client sizes from explicit shares (``None`` where unset: those split what is left evenly)."""
    if all(s is None for s in shares):
        return None
    given = sum(s for s in shares if s is not None)
    unset = sum(1 for s in shares if s is None)
    if given > 1.0 + 1e-9 or (unset == 0 and given <= 0):
        raise DataError(f"clients' data_share values add up to {given:.3f}; they must add up to at most 1")
    rest = (1.0 - given) / unset if unset else 0.0
    weights = np.array([rest if s is None else s for s in shares], dtype=float)
    weights = weights / weights.sum()
    sizes = np.floor(weights * n).astype(int)
    sizes[: n - sizes.sum()] += 1
    return sizes


@PARTITIONERS.register("iid")
class IID(Partitioner):
    description = "Uniform random split: every client sees the same distribution (honours data_share)."

    def split(
        self,
        data: Dataset,
        index: np.ndarray,
        n_clients: int,
        rng: np.random.Generator,
        shares: list[float | None],
    ) -> list[np.ndarray]:
        perm = rng.permutation(index)
        sizes = _shares_to_sizes(len(index), shares)
        if sizes is None:
            return [np.sort(p) for p in np.array_split(perm, n_clients)]
        return [np.sort(p) for p in np.split(perm, np.cumsum(sizes)[:-1])]


class DirichletParams(PartitionParams):
    alpha: float = Field(0.5, gt=0, le=1000, description="concentration: small = strong label skew")
    min_size: int = Field(2, ge=0, description="redraw until every client has at least this many samples")
    max_tries: int = Field(100, ge=1, le=10_000, description="redraws before giving up with an error")


@PARTITIONERS.register("dirichlet")
class Dirichlet(Partitioner):
    description = "Label skew: each class spread over clients by Dirichlet(alpha) proportions."
    Params = DirichletParams

    def split(
        self,
        data: Dataset,
        index: np.ndarray,
        n_clients: int,
        rng: np.random.Generator,
        shares: list[float | None],
    ) -> list[np.ndarray]:
        p: DirichletParams = self.params  # type: ignore[assignment]
        labels = data.labels[index]
        if n_clients * p.min_size > len(index):
            raise DataError(
                f"{n_clients} clients x min_size {p.min_size} needs {n_clients * p.min_size} samples "
                f"but only {len(index)} are available for training; use fewer clients or a smaller min_size"
            )
        best: list[np.ndarray] | None = None
        for _ in range(p.max_tries):
            parts: list[list[np.ndarray]] = [[] for _ in range(n_clients)]
            for value in np.unique(labels):
                pos = rng.permutation(index[labels == value])
                props = rng.dirichlet(np.full(n_clients, p.alpha))
                cuts = (np.cumsum(props) * len(pos)).astype(int)[:-1]
                for client, chunk in enumerate(np.split(pos, cuts)):
                    parts[client].append(chunk)
            best = [np.sort(np.concatenate(c)) for c in parts]
            if min(len(b) for b in best) >= p.min_size:
                return best
        smallest = min(len(b) for b in best or [[]])
        raise DataError(
            f"dirichlet(alpha={p.alpha}) could not give each of {n_clients} clients at least "
            f"{p.min_size} samples in {p.max_tries} tries (smallest got {smallest}); raise alpha, "
            f"lower min_size, or use fewer clients"
        )
