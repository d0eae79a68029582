"""``shards``: pathological label skew, each client holds exactly k classes (McMahan et al. 2017,
"Communication-Efficient Learning of Deep Networks from Decentralized Data", arXiv:1602.05629,
which sorted MNIST by label into 200 shards and gave each client 2).

Here the classes are shuffled and dealt round-robin, ``k`` consecutive ones per client, so every
class has at least one holder when ``clients x k >= classes``; each class's samples are then split
evenly among its holders. Deterministic in one pass: no retries. For regression the "classes" are
the target's deciles, so each client sees a narrow range of targets.
"""

from __future__ import annotations

import numpy as np
from pydantic import Field

from engine.data.base import PARTITIONERS, Dataset, Partitioner, PartitionParams
from engine.errors import DataError


class ShardsParams(PartitionParams):
    classes_per_client: int = Field(2, ge=1, le=1000, description="k: how many classes each client holds")


@PARTITIONERS.register("shards")
class Shards(Partitioner):
    description = "Pathological label skew: each client holds only k classes (McMahan et al. 2017)."
    Params = ShardsParams

    def split(
        self,
        data: Dataset,
        index: np.ndarray,
        n_clients: int,
        rng: np.random.Generator,
        shares: list[float | None],
    ) -> list[np.ndarray]:
        p: ShardsParams = self.params  # type: ignore[assignment]
        labels = data.labels[index]
        classes = np.unique(labels)
        k = min(p.classes_per_client, len(classes))
        if n_clients * k < len(classes):
            raise DataError(
                f"shards: {n_clients} clients x {k} classes each reach only {n_clients * k} of "
                f"{len(classes)} classes; raise classes_per_client to at least "
                f"{-(-len(classes) // n_clients)} or add clients"
            )
        order = rng.permutation(classes)
        holders: dict[int, list[int]] = {int(c): [] for c in classes}
        for client in range(n_clients):
            for j in range(k):
                holders[int(order[(client * k + j) % len(classes)])].append(client)
        parts: list[list[np.ndarray]] = [[] for _ in range(n_clients)]
        for c, clients in holders.items():
            pos = rng.permutation(index[labels == c])
            for client, chunk in zip(clients, np.array_split(pos, len(clients)), strict=True):
                parts[client].append(chunk)
        out = [np.sort(np.concatenate(chunks)) for chunks in parts]
        empty = [i for i, part in enumerate(out) if len(part) == 0]
        if empty:
            raise DataError(
                f"shards: client {empty[0]} got no samples (its classes have fewer samples than "
                f"holders); use fewer clients or raise classes_per_client"
            )
        return out
