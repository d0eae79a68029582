"""``quantity``: quantity skew, clients of very different sizes with the same label distribution
(Li et al. 2022, "Federated Learning on Non-IID Data Silos: An Experimental Study",
arXiv:2102.02079). Sizes follow a log-normal or a power law (Zipf: the r-th largest client holds a
share proportional to r^-exponent), or the roster's explicit per-client ``data_share``.

Every client first gets ``min_size`` samples and the rest is dealt in proportion to its weight,
so the split is computed in one pass: it never retries and never loops.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field

from engine.data.base import PARTITIONERS, Dataset, Partitioner, PartitionParams
from engine.errors import DataError


class QuantityParams(PartitionParams):
    distribution: Literal["lognormal", "powerlaw", "shares"] = Field(
        "lognormal", description="client sizes: log-normal, power law (Zipf), or the roster's data_share"
    )
    sigma: float = Field(1.0, gt=0, le=5, description="lognormal: spread of the log sizes")
    exponent: float = Field(
        1.0, gt=0, le=5, description="powerlaw: the r-th largest client's share ~ r^-exponent"
    )
    min_size: int = Field(2, ge=1, description="samples every client gets at least")


def allocate(n: int, weights: np.ndarray, min_size: int) -> np.ndarray:
    """Integer sizes summing to ``n``: ``min_size`` each, the rest in proportion to ``weights``
    (largest remainders get the leftover units)."""
    rest = n - min_size * len(weights)
    share = weights / weights.sum() * rest
    sizes = np.floor(share).astype(int)
    leftover = rest - sizes.sum()
    sizes[np.argsort(-(share - sizes), kind="stable")[:leftover]] += 1
    return sizes + min_size


@PARTITIONERS.register("quantity")
class Quantity(Partitioner):
    description = "Quantity skew: client sizes from a log-normal, a power law, or explicit shares."
    Params = QuantityParams

    def split(
        self,
        data: Dataset,
        index: np.ndarray,
        n_clients: int,
        rng: np.random.Generator,
        shares: list[float | None],
    ) -> list[np.ndarray]:
        p: QuantityParams = self.params  # type: ignore[assignment]
        if n_clients * p.min_size > len(index):
            raise DataError(
                f"quantity: {n_clients} clients x min_size {p.min_size} needs "
                f"{n_clients * p.min_size} samples but {len(index)} are available for training; "
                f"use fewer clients or a smaller min_size"
            )
        if p.distribution == "lognormal":
            weights = rng.lognormal(0.0, p.sigma, n_clients)
        elif p.distribution == "powerlaw":
            weights = rng.permutation(np.arange(1, n_clients + 1, dtype=float) ** -p.exponent)
        else:
            given = [s for s in shares if s is not None]
            if sum(given) > 1 + 1e-9:
                raise DataError(
                    f"clients' data_share values add up to {sum(given):.3f}; they must add up to at most 1"
                )
            unset = len(shares) - len(given)
            rest = (1.0 - sum(given)) / unset if unset else 0.0
            weights = np.array([rest if s is None else s for s in shares], dtype=float)
            if weights.sum() <= 0:
                raise DataError(
                    "quantity: every client's data_share is 0; give at least one a positive share"
                )
        sizes = allocate(len(index), weights, p.min_size)
        perm = rng.permutation(index)
        return [np.sort(part) for part in np.split(perm, np.cumsum(sizes)[:-1])]
