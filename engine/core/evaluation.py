"""Scoring every client's model each round: on its local test split (personalised), on its
validation split (which picks its best round) and on the global test set (generalisation). The
metrics themselves are :mod:`engine.core.metrics`.

Clients with the same architecture are scored together: their evaluation states are stacked and
one ``vmap``-ed ``functional_call`` computes all their outputs (local test splits padded to the
longest; a client's test and validation rows go through one forward pass), in chunks that bound
memory. Clients whose evaluation states are the very same tensors
and need no preprocessing (FedAvg's global model) are scored on the global test set once.
Strategies with their own ``predict`` (e.g. FedProto's nearest prototype) are scored one client
at a time through it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor
from torch.func import functional_call, vmap

from engine.core import training
from engine.core.client import template
from engine.core.state import load_into
from engine.data import Federation
from engine.flops import CHUNK_BYTES, rows_per_call, sample_cost  # noqa: F401 - CHUNK_BYTES re-exported
from engine.models import ModelFactory
from engine.types import ClientInfo

if TYPE_CHECKING:
    from engine.strategies.base import Strategy

LOOP_FLOPS = 10_000_000
"""A client whose forward pass over its rows costs more FLOPs than this is scored on its own
(its weights loaded into the module, its rows in memory-bounded batches) rather than ``vmap``-ed
with others: its kernels are large enough that batching across clients gains nothing, and vmap
turns convolutions into slower grouped ones (10 FedAvg CNNs on 2,157 28x28 images: about 2x the
time of scoring them one by one, bench/image_rounds.py)."""


def _stack(states: Sequence[dict[str, Tensor]], device: torch.device) -> dict[str, Tensor]:
    return {k: torch.stack([s[k] for s in states]).to(device) for k in states[0]}


@torch.no_grad()
def forward_many(
    model: torch.nn.Module, states: Sequence[dict[str, Tensor]], xs: Sequence[Tensor] | Tensor
) -> list[Tensor]:
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
            inputs = (
                xs if shared else [torch.cat([xs[i] for i in g]) if len(g) > 1 else xs[g[0]] for g in groups]
            )
            outs_u = forward_many(model, [states[g[0]] for g in groups], inputs)
            result: list[Tensor] = [torch.empty(0)] * k
            for g, o in zip(groups, outs_u, strict=True):
                parts = [o] * len(g) if shared else o.split([len(xs[i]) for i in g])
                for i, part in zip(g, parts, strict=True):
                    result[i] = part
            return result
    sample_shape = tuple(xs.shape[1:] if shared else next((x.shape[1:] for x in xs if x.dim() > 1), ()))
    cost = sample_cost(model, sample_shape) if sample_shape else None
    rows_budget = rows_per_call(model, sample_shape)
    rows = len(xs) if shared else max((len(x) for x in xs), default=0)
    alone = cost is None or cost.flops * rows >= LOOP_FLOPS
    if k == 1 or alone or any(isinstance(m, torch.nn.RNNBase) for m in model.modules()):
        # one at a time: a single state, clients with enough work each, or recurrent kernels
        # (aten::lstm/gru) that vmap cannot batch; rows in batches that bound the activations
        outs = []
        for i, state in enumerate(states):
            load_into(model, state)
            outs.append(training.predict(model, xs if shared else xs[i], batch_size=rows_budget))
        return outs
    chunk = max(1, min(k, rows_budget // max(rows, 1)))  # clients per call: their rows fit the budget

    def call(params: dict[str, Tensor], x: Tensor) -> Tensor:
        return functional_call(model, params, (x,))

    outs: list[Tensor] = []
    for start in range(0, k, chunk):
        part = states[start : start + chunk]
        params = _stack(part, device)
        if shared:
            step = max(1, rows_budget // len(part))  # rows per call across the chunk's clients
            out = (
                torch.cat(
                    [vmap(call, in_dims=(0, None))(params, xs[r : r + step]) for r in range(0, rows, step)], 1
                )
                if rows
                else vmap(call, in_dims=(0, None))(params, xs)
            )
            outs.extend(out.unbind(0))
        else:
            group = xs[start : start + chunk]
            if rows == 0:
                outs.extend(torch.zeros((0, 1), device=device) for _ in group)
                continue
            padded = torch.zeros((len(group), rows, *group[0].shape[1:]), dtype=group[0].dtype, device=device)
            for i, x in enumerate(group):
                padded[i, : len(x)] = x
            out = vmap(call, in_dims=(0, 0))(params, padded)
            outs.extend(out[i, : len(x)] for i, x in enumerate(group))
    return outs


def evaluate_clients(
    clients: Sequence[ClientInfo],
    strategy: Strategy,
    states: dict[int, dict[str, Any]],
    fed: Federation,
    devices: dict[int, torch.device],
    build: ModelFactory,
    task: str,
) -> dict[int, dict[str, float]]:
    """``local_*``, ``val_*`` and ``global_*`` metrics per client id (``val_*`` only for clients
    with validation rows)."""
    out: dict[int, dict[str, float]] = {c.id: {} for c in clients}
    eval_states = {c.id: strategy.eval_state(c, states[c.id]) for c in clients}
    custom = strategy.overrides("predict")
    gx, gy = fed.global_test.x, fed.global_test.y
    for members in _module_groups(clients, devices, custom):
        device = devices[members[0].id]
        model = template(members[0].spec.model, device, build)
        model.eval()
        data = [fed.clients[c.id] for c in members]
        inputs = [_held_out_x(d).to(device) for d in data]
        gyd = gy.to(device)
        if custom:
            c = members[0]
            predict = _own_predict(strategy, c, model, eval_states[c.id], states[c.id])
            held_out = [predict(inputs[0])]
            global_out = {c.id: predict(data[0].transform(gx.to(device)))}
        else:
            held_out = forward_many(model, [eval_states[c.id] for c in members], inputs)
            global_out = _global_outputs(model, members, eval_states, fed, device)
        tests = [o[: len(d.test)] for o, d in zip(held_out, data, strict=True)]
        vals = [o[len(d.test) :] for o, d in zip(held_out, data, strict=True)]
        scored = training.metrics_many(
            task,
            tests + vals,
            [d.test.y.to(device) for d in data] + [d.val.y.to(device) for d in data],
            fed.target_std,
        )
        unique = {id(o): o for o in global_out.values()}  # clients sharing one global model share its scores
        global_scores = dict(
            zip(
                unique,
                training.metrics_many(task, list(unique.values()), [gyd] * len(unique), fed.target_std),
                strict=True,
            )
        )
        for i, c in enumerate(members):
            out[c.id].update({f"local_{k}": v for k, v in scored[i].items()})
            out[c.id].update({f"val_{k}": v for k, v in scored[len(members) + i].items()})
            out[c.id].update({f"global_{k}": v for k, v in global_scores[id(global_out[c.id])].items()})
    return out


def global_figures(
    clients: Sequence[ClientInfo],
    strategy: Strategy,
    eval_states: dict[int, dict[str, Tensor]],
    states: dict[int, dict[str, Any]],
    fed: Federation,
    devices: dict[int, torch.device],
    build: ModelFactory,
    task: str,
) -> dict[int, dict[str, float]]:
    """``global_*`` metrics per client id of the given evaluation states (models kept at an
    earlier round, say) on ``fed``'s global test set, as :func:`evaluate_clients` scores them;
    ``states`` are what a strategy's own ``predict`` reads beside the model."""
    custom = strategy.overrides("predict")
    out: dict[int, dict[str, float]] = {}
    for members in _module_groups(clients, devices, custom):
        device = devices[members[0].id]
        model = template(members[0].spec.model, device, build)
        model.eval()
        if custom:
            c = members[0]
            predict = _own_predict(strategy, c, model, eval_states[c.id], states[c.id])
            outs = {c.id: predict(fed.clients[c.id].transform(fed.global_test.x.to(device)))}
        else:
            outs = _global_outputs(model, members, eval_states, fed, device)
        gy = fed.global_test.y.to(device)
        scored = training.metrics_many(
            task, [outs[c.id] for c in members], [gy] * len(members), fed.target_std
        )
        for c, m in zip(members, scored, strict=True):
            out[c.id] = {f"global_{k}": v for k, v in m.items()}
    return out


def _module_groups(
    clients: Sequence[ClientInfo], devices: dict[int, torch.device], custom: bool
) -> list[list[ClientInfo]]:
    """Clients scored through one reusable module: one model spec on one device (each client alone
    when the strategy predicts its own way, since its ``predict`` reads that client's state)."""
    groups: dict[tuple[str, str], list[ClientInfo]] = {}
    for c in clients:
        key = (f"{c.arch_key}#{c.id}" if custom else c.arch_key, str(devices[c.id]))
        groups.setdefault(key, []).append(c)
    return list(groups.values())


def _own_predict(
    strategy: Strategy, c: ClientInfo, model: torch.nn.Module, eval_state: dict[str, Tensor], state: Any
) -> Callable[[Tensor], Tensor]:
    """Client ``c``'s outputs for a batch of inputs through the strategy's own ``predict`` (its
    evaluation weights loaded into ``model``), in chunks sized for the model."""
    load_into(model, eval_state)
    forward = partial(strategy.predict, c, model, state)
    return lambda x: training.predict(forward, x, batch_size=rows_per_call(model, x.shape[1:]))


def _held_out_x(data: Any) -> Tensor:
    """A client's local test rows followed by its validation rows (one forward pass scores both)."""
    return torch.cat([data.test.x, data.val.x]) if len(data.val) else data.test.x


def _global_outputs(
    model: torch.nn.Module,
    members: Sequence[ClientInfo],
    eval_states: dict[int, dict[str, Tensor]],
    fed: Federation,
    device: torch.device,
) -> dict[int, Tensor]:
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
        outs = forward_many(
            model,
            [eval_states[c.id] for c in transformed],
            [fed.clients[c.id].transform(gx) for c in transformed],
        )
        result.update({c.id: o for c, o in zip(transformed, outs, strict=True)})
    else:
        for group in by_transform.values():  # one shared input per transform
            outs = forward_many(
                model, [eval_states[c.id] for c in group], fed.clients[group[0].id].transform(gx)
            )
            result.update({c.id: o for c, o in zip(group, outs, strict=True)})
    return result


def stratified_rows(y: Tensor, n: int, rng: np.random.Generator, task: str) -> np.ndarray | None:
    """``n`` row indices of ``y`` (sorted) with each class in proportion (largest remainders; a
    class with rows keeps at least one while ``n`` allows), drawn with ``rng``; for regression,
    the same over ten quantile bins of the target. ``None`` when ``n`` covers every row."""
    total = len(y)
    if n >= total:
        return None
    values = y.cpu().numpy()
    if task == "classification":
        strata = values
    else:
        edges = np.quantile(values, np.linspace(0, 1, 11)[1:-1])
        strata = np.searchsorted(edges, values, side="right")
    labels, counts = np.unique(strata, return_counts=True)
    quota = counts * n / total
    take = np.floor(quota).astype(int)
    if n >= len(labels):
        take = np.maximum(take, 1)
    rest = n - take.sum()
    if rest > 0:
        order = np.argsort(-(quota - np.floor(quota)), kind="stable")
        take[order[:rest]] += 1
    elif rest < 0:  # the at-least-one rule overshot: trim the largest strata
        for i in np.argsort(-take, kind="stable")[:-rest]:
            take[i] -= 1
    picked = [
        rng.choice(np.flatnonzero(strata == label), size=k, replace=False)
        for label, k in zip(labels, take, strict=True)
        if k > 0
    ]
    return np.sort(np.concatenate(picked))
