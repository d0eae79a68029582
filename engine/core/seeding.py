"""Per-run seeding without global state.

Every random choice in a run derives its seed from the run seed and a path of names
(``derive_seed(seed, "client", 3, "round", 7)``), so a client's work does not depend on the order
in which clients run, on threads, or on which other clients exist. No constructor calls
``torch.manual_seed``; model initialisation happens inside :func:`seeded` on one thread.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch

RNG_LOCK = threading.RLock()
"""Held while torch's global RNG is seeded (:func:`seeded`) or drawn from (model building), so
runs on concurrent threads (the run manager's pool) cannot draw from each other's seeded state."""


def derive_seed(seed: int, *path: object) -> int:
    """A 63-bit seed determined by ``seed`` and the path of names/numbers."""
    text = "/".join([str(seed), *map(str, path)])
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little") >> 1


def generator(seed: int, *path: object, device: str | torch.device = "cpu") -> torch.Generator:
    """A torch generator seeded by :func:`derive_seed`."""
    g = torch.Generator(device=device)
    g.manual_seed(derive_seed(seed, *path))
    return g


def numpy_rng(seed: int, *path: object) -> np.random.Generator:
    """A numpy generator seeded by :func:`derive_seed`."""
    return np.random.default_rng(derive_seed(seed, *path))


@contextmanager
def seeded(seed: int, *path: object) -> Iterator[None]:
    """Run the block with torch's global CPU RNG seeded, restoring it afterwards.

    Only for code that cannot take a generator (``nn.Module`` initialisation). Holds
    :data:`RNG_LOCK`, so concurrent runs' seeded blocks and model builds never interleave.
    """
    with RNG_LOCK, torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(seed, *path))
        yield


def init_path(init: str, client_id: int, model_key: str) -> tuple[object, ...]:
    """The seed path of a client's initial weights: with ``init="shared"`` (the default) every
    client of one model spec draws the same weights, as the reference libraries start all clients
    from one model; with ``"per_client"`` each client draws its own."""
    if init == "shared":
        return ("init", model_key)
    return ("init", client_id)
