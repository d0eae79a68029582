"""Scoring every client's model each round: on its local test split (personalised) and on the
global test set (generalisation).

Clients with the same architecture are scored together: their evaluation states are stacked and
one ``vmap``-ed ``functional_call`` computes all their outputs (local test splits padded to the
longest), in chunks that bound memory. Clients whose evaluation states are the very same tensors
and need no preprocessing (FedAvg's global model) are scored on the global test set once.
Strategies with their own ``predict`` (e.g. FedProto's nearest prototype) are scored one client
at a time through it.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any

import torch
from torch import Tensor
from torch.func import functional_call, vmap

from engine import training
from engine.client import load_into, template
from engine.data import Federation
from engine.models import ModelFactory
from engine.strategies.base import ClientInfo, Strategy

CHUNK_BYTES = 64 << 20
"""Input bytes per batched forward: bounds the memory of scoring many clients at once."""


def _stack(states: Sequence[dict[str, Tensor]], device: torch.device) -> dict[str, Tensor]:
    return {k: torch.stack([s[k] for s in states]).to(device) for k in states[0]}


@torch.no_grad()
def forward_many(model: torch.nn.Module, states: Sequence[dict[str, Tensor]],
                 xs: Sequence[Tensor] | Tensor) -> list[Tensor]:
    """Outputs of ``model`` under each of ``states`` on its own input (``xs[i]``), or on one
    shared input tensor. Batched with ``vmap`` in memory-bounded chunks; one at a time when there
    is a single state."""
    shared = isinstance(xs, Tensor)
    device = next(model.parameters()).device
    k = len(states)
    if k > 1:
        # clients holding the very same tensors (FedAvg's global model) are one model: score it
        # once, on the shared input or on the concatenation of their inputs, instead of stacking
        # k copies of it; clients of one group get the same output tensor (or slices of one)
        same: dict[tuple[int, ...], list[int]] = {}
        for i, state in enumerate(states):
            same.setdefault(tuple(id(v) for v in state.values()), []).append(i)
        if len(same) < k:
            groups = list(same.values())
            inputs = xs if shared else [torch.cat([xs[i] for i in g]) if len(g) > 1 else xs[g[0]] for g in groups]
            outs_u = forward_many(model, [states[g[0]] for g in groups], inputs)
            result: list[Tensor] = [torch.empty(0)] * k
            for g, o in zip(groups, outs_u, strict=True):
                parts = [o] * len(g) if shared else o.split([len(xs[i]) for i in g])
                for i, part in zip(g, parts, strict=True):
                    result[i] = part
            return result
    if k == 1 or any(isinstance(m, torch.nn.RNNBase) for m in model.modules()):
        # one at a time: a single state, or recurrent kernels (aten::lstm/gru) that vmap cannot batch
        outs = []
        for i, state in enumerate(states):
            load_into(model, state)
            outs.append(training.predict(model, xs if shared else xs[i]))
        return outs
    sample_bytes = (xs[0].numel() if shared else max(x[0].numel() if len(x) else 1 for x in xs)) * 4
    rows = len(xs) if shared else max(len(x) for x in xs)
    per_client = max(1, rows * sample_bytes)
    chunk = max(1, min(k, CHUNK_BYTES // per_client)) if not shared else k

    def call(params: dict[str, Tensor], x: Tensor) -> Tensor:
        return functional_call(model, params, (x,))

    outs: list[Tensor] = []
    for start in range(0, k, chunk):
        part = states[start:start + chunk]
        params = _stack(part, device)
        if shared:
            out = vmap(call, in_dims=(0, None))(params, xs)
            outs.extend(out.unbind(0))
        else:
            group = xs[start:start + chunk]
            if rows == 0:
                outs.extend(torch.zeros((0, 1), device=device) for _ in group)
                continue
            padded = torch.zeros((len(group), rows, *group[0].shape[1:]), dtype=group[0].dtype, device=device)
            for i, x in enumerate(group):
                padded[i, : len(x)] = x
            out = vmap(call, in_dims=(0, 0))(params, padded)
            outs.extend(out[i, : len(x)] for i, x in enumerate(group))
    return outs


def evaluate_clients(clients: Sequence[ClientInfo], strategy: Strategy, states: dict[int, dict[str, Any]],
                     fed: Federation, devices: dict[int, torch.device], build: ModelFactory,
                     task: str) -> dict[int, dict[str, float]]:
    """``local_*`` and ``global_*`` metrics per client id."""
    out: dict[int, dict[str, float]] = {c.id: {} for c in clients}
    eval_states = {c.id: strategy.eval_state(c, states[c.id]) for c in clients}
    custom = type(strategy).predict is not Strategy.predict
    gx, gy = fed.global_test.x, fed.global_test.y
    groups: dict[tuple[str, str], list[ClientInfo]] = {}
    for c in clients:
        key = (c.arch_key, str(devices[c.id])) if not custom else (f"{c.arch_key}#{c.id}", str(devices[c.id]))
        groups.setdefault(key, []).append(c)
    for members in groups.values():
        device = devices[members[0].id]
        model = template(members[0].spec.model, device, build)
        model.eval()
        ys = [fed.clients[c.id].test.y.to(device) for c in members]
        gyd = gy.to(device)
        if custom:
            c = members[0]
            load_into(model, eval_states[c.id])
            forward = partial(strategy.predict, c, model, states[c.id])
            data = fed.clients[c.id]
            local_out = [training.predict(forward, data.test.x.to(device))]
            global_out = {c.id: training.predict(forward, data.transform(gx.to(device)))}
        else:
            local_out = forward_many(model, [eval_states[c.id] for c in members],
                                     [fed.clients[c.id].test.x.to(device) for c in members])
            global_out = _global_outputs(model, members, eval_states, fed, device)
        local_scores = training.metrics_many(task, local_out, ys, fed.target_std)
        unique: dict[int, dict[str, float]] = {}
        for c, scores in zip(members, local_scores, strict=True):
            out[c.id].update({f"local_{k}": v for k, v in scores.items()})
            o = global_out[c.id]
            if id(o) not in unique:  # clients sharing one global model share its scores
                unique[id(o)] = training.metrics(task, o, gyd, fed.target_std)
            out[c.id].update({f"global_{k}": v for k, v in unique[id(o)].items()})
    return out


def _global_outputs(model: torch.nn.Module, members: Sequence[ClientInfo], eval_states: dict[int, dict[str, Tensor]],
                    fed: Federation, device: torch.device) -> dict[int, Tensor]:
    """Global-test outputs per client: clients without preprocessing share the raw input, clients
    sharing one transform (federated statistics) share its output (and :func:`forward_many` scores
    clients holding the same tensors once); the others go through their own transform."""
    gx = fed.global_test.x.to(device)
    plain = [c for c in members if fed.clients[c.id].transform.is_identity]
    transformed = [c for c in members if not fed.clients[c.id].transform.is_identity]
    result: dict[int, Tensor] = {}
    if plain:
        outs = forward_many(model, [eval_states[c.id] for c in plain], gx)
        result.update({c.id: o for c, o in zip(plain, outs, strict=True)})
    by_transform: dict[int, list[ClientInfo]] = {}  # federated statistics: clients share one transform
    for c in transformed:
        by_transform.setdefault(id(fed.clients[c.id].transform), []).append(c)
    if len(by_transform) == len(transformed) and transformed:  # each its own: one batched pass
        outs = forward_many(model, [eval_states[c.id] for c in transformed],
                            [fed.clients[c.id].transform(gx) for c in transformed])
        result.update({c.id: o for c, o in zip(transformed, outs, strict=True)})
    else:
        for group in by_transform.values():  # one shared input per transform
            outs = forward_many(model, [eval_states[c.id] for c in group], fed.clients[group[0].id].transform(gx))
            result.update({c.id: o for c, o in zip(group, outs, strict=True)})
    return result
