"""The ``vectorized`` executor: clients that share an architecture train together in one batched
computation with ``torch.func`` (``functional_call`` + ``grad`` + ``vmap`` over the client
dimension), their optimiser states stacked the same way.

Semantics match the sequential path step for step: each client shuffles its own data with its
own generator, takes ``ceil(n_i / batch)`` steps per epoch, its loss is the mean over its real
samples, and SGD (momentum, weight decay), Adam and AdamW follow ``torch.optim``'s update rules
with per-client learning rates. Clients with fewer steps are masked out of the steps they do not
have (parameters and optimiser state unchanged), so differing dataset sizes need no resampling.
Batches are gathered from the clients' data concatenated once, with per-client index tensors,
so nothing is padded but indices.

What it cannot batch runs sequentially, per group, and the run's events say so: strategies whose
local training is not the default (FedProx, SCAFFOLD, distillation...), clients with
augmentation, groups of one, and models torch.func cannot vmap.
"""

from __future__ import annotations

import math
from itertools import accumulate
import time
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.func import functional_call, grad_and_value, vmap

from engine.aggregate import overlay
from engine.client import (
    ClientEnv, ClientJob, detach, finish_turn, load_into, run_client, snapshot, start_turn, template,
)
from engine.seeding import generator
from engine.errors import CancelledError
from engine.executors import EXECUTORS, Executor
from engine.strategies.base import ClientContext, ClientResult, Strategy
from engine.training import FitStats


def batchable_strategy(strategy: Strategy) -> bool:
    """Whether the strategy trains clients with the default loop and loss (FedAvg-style)."""
    cls = type(strategy)
    return cls.local_update is Strategy.local_update and cls.local_loss is Strategy.local_loss


def group_key(job: ClientJob) -> tuple[Any, ...] | None:
    """Jobs with equal keys can train in one batch; ``None`` for a job that cannot batch."""
    spec = job.client.spec
    if spec.augment.active:
        return None
    return (job.client.arch_key, str(job.device), spec.optimizer, spec.batch_size, spec.epochs)


@EXECUTORS.register("vectorized")
class Vectorized(Executor):
    description = ("Clients with the same architecture train in one batched torch.func computation; "
                   "falls back to sequential per group where it cannot batch.")

    def __init__(self, min_group: int = 2, **options: Any) -> None:
        super().__init__(**options)
        self.min_group = int(min_group)
        self._said: set[str] = set()

    def _say(self, env: ClientEnv, message: str) -> None:
        if message not in self._said:
            self._said.add(message)
            env.log(message)

    def map(self, jobs: list[ClientJob], env: ClientEnv) -> list[ClientResult]:
        if not batchable_strategy(env.strategy):
            self._say(env, f"vectorized executor: strategy '{env.strategy.name}' customises local "
                           f"training, so clients train sequentially")
            return [run_client(job, env) for job in jobs]
        groups: dict[Any, list[int]] = {}
        singles: list[int] = []
        for i, job in enumerate(jobs):
            key = group_key(job)
            if key is None:
                singles.append(i)
            else:
                groups.setdefault(key, []).append(i)
        results: dict[int, ClientResult] = {}
        for key, members in groups.items():
            if len(members) < self.min_group:
                singles.extend(members)
                continue
            try:
                out = train_group([jobs[i] for i in members], env)
            except (RuntimeError, NotImplementedError) as exc:
                if isinstance(exc, CancelledError):
                    raise
                self._say(env, f"vectorized executor: {jobs[members[0]].client.arch} clients could not be "
                               f"batched ({type(exc).__name__}: {str(exc)[:120]}); trained sequentially")
                out = [run_client(jobs[i], env) for i in members]
            results.update(zip(members, out, strict=True))
        if singles and groups:
            self._say(env, f"vectorized executor: {len(singles)} client(s) without a batch partner "
                           f"or with augmentation trained sequentially")
        for i in singles:
            results[i] = run_client(jobs[i], env)
        return [results[i] for i in range(len(jobs))]


def _per_client(values: Sequence[float], like: Tensor) -> Tensor:
    return torch.tensor(values, dtype=like.dtype, device=like.device)


def _expand(v: Tensor, p: Tensor) -> Tensor:
    """A per-client vector broadcast against a stacked parameter ``(k, ...)``."""
    return v.reshape((-1,) + (1,) * (p.dim() - 1))


def default_exchange(strategy: Strategy) -> bool:
    """Whether the strategy receives and replies with the default hooks (merge the message
    into the model; send the shared part): then a client's turn needs no live module at all."""
    cls = type(strategy)
    return cls.receive is Strategy.receive and cls.payload is Strategy.payload


def train_group(jobs: list[ClientJob], env: ClientEnv) -> list[ClientResult]:
    """Train ``jobs`` (same architecture, device, optimiser kind, batch size and epochs) together
    and return their results in order."""
    started = time.perf_counter()
    strategy = env.strategy
    device = jobs[0].device
    spec0 = jobs[0].client.spec
    model = template(spec0.model, device, env.build)
    param_names = [n for n, _ in model.named_parameters()]
    fast = default_exchange(strategy)
    ctxs: list[ClientContext] = []
    if fast:
        starts = [overlay(job.state["model"], job.message) if job.receive else dict(job.state["model"])
                  for job in jobs]
        gens = [generator(env.seed, "client", job.client.id, "round", job.round) for job in jobs]
        xs = [job.data.train.x.to(device) for job in jobs]
        ys = [job.data.train.y.to(device) for job in jobs]
    else:
        for job in jobs:
            ctxs.append(start_turn(job, env))
        starts = [{n: t.clone() for n, t in snapshot(c.model).items()} for c in ctxs]
        gens = [c.generator for c in ctxs]
        xs = [c.x for c in ctxs]
        ys = [c.y for c in ctxs]
    buffer_names = [n for n in starts[0] if n not in set(param_names)]
    k = len(jobs)
    params = {n: torch.stack([s[n] for s in starts]).to(device) for n in param_names}
    buffers = {n: torch.stack([s[n] for s in starts]).to(device) for n in buffer_names}
    ref = next(iter(params.values()))
    lr = _per_client([j.client.spec.lr for j in jobs], ref)
    momentum = _per_client([j.client.spec.momentum for j in jobs], ref)
    wd = _per_client([j.client.spec.weight_decay for j in jobs], ref)
    task = env.task

    def loss_one(p: dict[str, Tensor], b: dict[str, Tensor], xb: Tensor, yb: Tensor, mb: Tensor) -> Tensor:
        out = functional_call(model, (p, b), (xb,))
        if task == "classification":
            per = F.cross_entropy(out, yb, reduction="none")
        else:
            per = (out[:, 0] - yb) ** 2
        return (per * mb).sum() / mb.sum().clamp(min=1.0)

    step_fn = vmap(grad_and_value(loss_one), in_dims=(0, 0 if buffers else None, 0, 0, 0))

    sizes = [len(y) for y in ys]
    offsets = [0, *accumulate(sizes)][:-1]
    x_all = torch.cat(xs)
    y_all = torch.cat(ys)
    bs, epochs = spec0.batch_size, spec0.epochs
    steps_per_epoch = [math.ceil(n / bs) for n in sizes]
    budgets = torch.tensor([
        (math.ceil(epochs * s * j.work_fraction) if j.work_fraction < 1 else epochs * s)
        for s, j in zip(steps_per_epoch, jobs, strict=True)], device=device)
    t_max = max(steps_per_epoch)
    optimizer = spec0.optimizer
    state: dict[str, dict[str, Tensor]] = {n: {} for n in params}
    for n, p in params.items():
        if optimizer == "sgd":
            state[n]["buf"] = torch.zeros_like(p)
        else:
            state[n]["m"] = torch.zeros_like(p)
            state[n]["v"] = torch.zeros_like(p)
    steps = torch.zeros(k, dtype=torch.long, device=device)
    loss_sum = torch.zeros(k, dtype=ref.dtype, device=device)
    samples = torch.zeros(k, dtype=torch.long, device=device)
    for _ in range(epochs):
        idx = torch.zeros((k, t_max * bs), dtype=torch.long)
        mask = torch.zeros((k, t_max * bs), dtype=ref.dtype)
        for i, g in enumerate(gens):
            idx[i, : sizes[i]] = torch.randperm(sizes[i], generator=g) + offsets[i]
            mask[i, : sizes[i]] = 1
        idx = idx.view(k, t_max, bs).to(device)
        mask = mask.view(k, t_max, bs).to(device)
        for t in range(t_max):
            if env.cancel is not None and env.cancel.is_set():
                raise CancelledError("cancelled")
            mt = mask[:, t]
            active = (mt.sum(1) > 0) & (steps < budgets)
            if not bool(active.any()):
                continue
            gi = idx[:, t]
            grads, losses = step_fn(params, buffers, x_all[gi], y_all[gi], mt)
            steps = steps + active.long()
            loss_sum = loss_sum + torch.where(active, losses.detach(), torch.zeros_like(losses))
            samples = samples + torch.where(active, mt.sum(1).long(), torch.zeros_like(samples))
            _optimizer_step(optimizer, params, grads, state, lr, momentum, wd, active, steps)
    share = (time.perf_counter() - started) / k
    results = []
    on_cpu = device.type == "cpu"
    for i, job in enumerate(jobs):
        trained = {n: (params[n][i] if n in params else buffers[n][i]) for n in starts[i]}
        n_steps = int(steps[i])
        fit = FitStats(float(loss_sum[i]) / max(n_steps, 1), n_steps, int(samples[i]))
        if fast:
            model_state = trained if on_cpu else detach(trained)
            result = ClientResult(job.client, strategy.shared_part(model_state), len(job.data.train),
                                  {"model": model_state, "extra": job.state.get("extra", {})},
                                  {"train_loss": fit.loss if n_steps else float("nan"),
                                   "steps": float(n_steps), "samples_seen": float(fit.samples)})
        else:
            ctx = ctxs[i]
            load_into(ctx.model, trained)
            ctx.fit_stats.append(fit)
            result = finish_turn(job, ctx, started)
        result.metrics["wall_s"] = share
        results.append(result)
    return results


@torch.no_grad()
def _optimizer_step(kind: str, params: dict[str, Tensor], grads: dict[str, Tensor],
                    state: dict[str, dict[str, Tensor]], lr: Tensor, momentum: Tensor, wd: Tensor,
                    active: Tensor, steps: Tensor) -> None:
    """One optimiser step for every active client, following torch.optim's update rules.

    SGD's momentum buffer starts at zero, so ``m * buf + g`` equals torch's first-step ``buf = g``.
    When some clients have no batch at this step, their parameters and state are left unchanged.
    """
    everyone = bool(active.all())
    decay = bool((wd > 0).any())
    for n, p in params.items():
        g = grads[n]
        lr_, wd_ = _expand(lr, p), _expand(wd, p)
        if kind == "sgd":
            g = g + wd_ * p if decay else g
            buf = state[n]["buf"]
            new_buf = _expand(momentum, p) * buf + g
            if everyone:
                buf.copy_(new_buf)
                p.sub_(lr_ * new_buf)
            else:
                act = _expand(active, p)
                buf.copy_(torch.where(act, new_buf, buf))
                p.sub_(torch.where(act, lr_ * new_buf, torch.zeros_like(p)))
            continue
        beta1, beta2, eps = 0.9, 0.999, 1e-8
        if kind == "adam":
            g = g + wd_ * p
            decoupled = None
        else:  # adamw: decoupled decay
            decoupled = lr_ * wd_ * p
        m, v = state[n]["m"], state[n]["v"]
        new_m = beta1 * m + (1 - beta1) * g
        new_v = beta2 * v + (1 - beta2) * g * g
        t = _expand(steps.to(p.dtype), p)
        bc1 = 1 - beta1 ** t
        bc2_sqrt = torch.sqrt(1 - beta2 ** t)
        update = (lr_ / bc1) * new_m / (torch.sqrt(new_v) / bc2_sqrt + eps)
        if decoupled is not None:
            update = update + decoupled
        if everyone:
            m.copy_(new_m)
            v.copy_(new_v)
            p.sub_(update)
        else:
            act = _expand(active, p)
            m.copy_(torch.where(act, new_m, m))
            v.copy_(torch.where(act, new_v, v))
            p.sub_(torch.where(act, update, torch.zeros_like(p)))
