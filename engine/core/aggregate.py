"""Aggregation maths as pure functions over plain dicts of tensors: no framework, easy to test.

The weighted mean follows FedAvg (McMahan et al. 2017): ``sum_k n_k w_k / sum_k n_k``, computed
per tensor name over the clients that sent a tensor of that name *and shape*, so clients with
different architectures can share the keys they have in common.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from engine.core.state import State

_CHUNK = 32
"""Clients per stacked contraction in :func:`weighted_mean`."""


def weighted_mean(states: Sequence[State], weights: Sequence[float]) -> dict[str, Tensor]:
    """Per-key weighted mean of ``states`` (all holding the same keys and shapes).

    Integer tensors (counters) take the value of the heaviest client instead of a mean.
    """
    if not states:
        return {}
    w = torch.as_tensor(list(weights), dtype=torch.float64)
    if float(w.sum()) <= 0:
        w = torch.ones_like(w)
    w = w / w.sum()
    out: dict[str, Tensor] = {}
    for key, ref in states[0].items():
        if not ref.is_floating_point():
            out[key] = states[int(torch.argmax(w))][key].clone()
            continue
        # a few stacked contractions per key instead of one add per client: each chunk of clients
        # is contracted in the tensors' own dtype, the chunks' sums accumulate in float64
        wd = w.to(device=ref.device, dtype=ref.dtype)
        acc = torch.zeros(ref.shape, dtype=torch.float64, device=ref.device)
        for start in range(0, len(states), _CHUNK):
            part = torch.stack([s[key] for s in states[start : start + _CHUNK]])
            acc.add_(torch.tensordot(wd[start : start + _CHUNK], part, dims=1))
        out[key] = acc.to(ref.dtype)
    return out


def weighted_mean_matching(states: Sequence[State], weights: Sequence[float]) -> dict[str, Tensor]:
    """Weighted mean per key over the states whose tensor of that key has the same shape as the
    most common shape for that key. Keys nobody shares are averaged over their single owner."""
    groups: dict[tuple[str, tuple[int, ...]], list[int]] = {}
    for i, state in enumerate(states):
        for key, tensor in state.items():
            groups.setdefault((key, tuple(tensor.shape)), []).append(i)
    best: dict[str, tuple[tuple[int, ...], list[int]]] = {}
    for (key, shape), members in groups.items():
        if key not in best or len(members) > len(best[key][1]):
            best[key] = (shape, members)
    out: dict[str, Tensor] = {}
    for key, (_, members) in best.items():
        out.update(weighted_mean([{key: states[i][key]} for i in members], [weights[i] for i in members]))
    return out
