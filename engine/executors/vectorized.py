"""The ``vectorized`` executor: clients that share an architecture train together in one batched
computation with ``torch.func`` (``functional_call`` + ``grad`` + ``vmap`` over the client
dimension), their optimiser states stacked the same way.

Semantics match the sequential path step for step: each client shuffles its own data with its
own generator, takes ``ceil(n_i / batch)`` steps per epoch, its loss is the mean over its real
samples, and SGD (momentum, weight decay), Adam and AdamW follow ``torch.optim``'s update rules
with per-client learning rates. Clients with fewer steps are masked out of the steps they do not
have (parameters and optimiser state unchanged), so differing dataset sizes need no resampling.
Batches are gathered from the clients' data concatenated once, with per-client index tensors;
a batched step is as wide as the largest client's batch (clients smaller than the batch size are
not padded up to it), and the optimiser updates the stacked tensors in place
(:class:`engine.executors.stacked.StackedOptimizer`), so a step allocates no model-sized temporaries.

What it cannot batch runs sequentially, per group, and the run's events say so: strategies whose
local training is not the default (FedProx, SCAFFOLD, distillation...), clients with
augmentation, groups of one, and models torch.func cannot vmap.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from functools import lru_cache
from itertools import accumulate
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor
from torch.func import functional_call, grad_and_value, vmap

from engine.core.client import ClientEnv, ClientJob, finish_turn, run_client, start_turn, template
from engine.core.seeding import generator
from engine.core.state import load_into, overlay, snapshot
from engine.core.training import FitStats
from engine.errors import CancelledError
from engine.executors.base import EXECUTORS, Executor, ExecutorParams, RunPlan, batch_key, intra_op_threads
from engine.executors.stacked import StackedOptimizer
from engine.types import ClientContext, ClientResult

if TYPE_CHECKING:
    from engine.strategies.base import Strategy


def batchable_strategy(strategy: Strategy) -> bool:
    """Whether the strategy trains clients with the default loop and loss (FedAvg-style)."""
    return not strategy.overrides("local_update", "local_loss")


def group_key(job: ClientJob) -> tuple[Any, ...] | None:
    """Jobs with equal keys can train in one batch; ``None`` for a job that cannot batch."""
    key = batch_key(job.client)
    return None if key is None else (*key, str(job.device))


@EXECUTORS.register("vectorized")
class Vectorized(Executor):
    description = (
        "Clients with the same architecture train in one batched torch.func computation; "
        "falls back to sequential per group where it cannot batch."
    )

    class Params(ExecutorParams):
        min_group: int = Field(
            2,
            ge=1,
            le=1_000_000,
            description="smallest group of like clients trained as one batched computation",
        )

    def __init__(self, min_group: int = 2, **options: Any) -> None:
        super().__init__(**options)
        self.min_group = int(min_group)
        self._said: set[str] = set()

    def prepare(self, plan: RunPlan) -> int:
        # a batched step computes a whole group's steps at once: its size decides whether a
        # second thread pays
        step = plan.largest_step()
        if batchable_strategy(plan.strategy):
            groups: dict[tuple[Any, ...], float] = {}
            for c in plan.clients:
                key = batch_key(c)
                if key is not None and c.id not in plan.recurrent:
                    groups[key] = groups.get(key, 0.0) + plan.step_flops.get(c.id, 0.0)
            step = max([step, *groups.values()])
        return intra_op_threads(plan, step)

    def _say(self, env: ClientEnv, message: str) -> None:
        if message not in self._said:
            self._said.add(message)
            env.log(message)

    def map(self, jobs: list[ClientJob], env: ClientEnv) -> list[ClientResult]:
        if not batchable_strategy(env.strategy):
            self._say(
                env,
                f"vectorized executor: strategy '{env.strategy.name}' customises local "
                f"training, so clients train sequentially",
            )
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
        for members in groups.values():
            if len(members) < self.min_group:
                singles.extend(members)
                continue
            try:
                out = train_group([jobs[i] for i in members], env)
            except (RuntimeError, NotImplementedError) as exc:
                if isinstance(exc, CancelledError):
                    raise
                self._say(
                    env,
                    f"vectorized executor: {jobs[members[0]].client.arch} clients could not be "
                    f"batched ({type(exc).__name__}: {str(exc)[:120]}); trained sequentially",
                )
                out = [run_client(jobs[i], env) for i in members]
            results.update(zip(members, out, strict=True))
        if singles and groups:
            self._say(
                env,
                f"vectorized executor: {len(singles)} client(s) without a batch partner, "
                f"with augmentation or with DP-SGD trained sequentially",
            )
        for i in singles:
            results[i] = run_client(jobs[i], env)
        return [results[i] for i in range(len(jobs))]


def _per_client(values: Sequence[float], like: Tensor) -> Tensor:
    return torch.tensor(values, dtype=like.dtype, device=like.device)


def default_exchange(strategy: Strategy) -> bool:
    """Whether the strategy receives and replies with the default hooks (merge the message
    into the model; send the shared part): then a client's turn needs no live module at all."""
    return not strategy.overrides("receive", "payload")


def train_group(jobs: list[ClientJob], env: ClientEnv) -> list[ClientResult]:
    """Train ``jobs`` (same architecture, device, optimiser kind, batch size and epochs) together
    and return their results in order.

    The clients are batched in order of their steps per epoch, most first, so at every step the
    clients that still have a batch are the first ones and the step computes only those: with
    uneven clients (Dirichlet splits) a step costs what its active clients cost, not the whole
    group's.
    """
    order = sorted(range(len(jobs)), key=lambda i: -len(jobs[i].data.train))
    results = _train_sorted([jobs[i] for i in order], env)
    out: list[ClientResult | None] = [None] * len(jobs)
    for i, result in zip(order, results, strict=True):
        out[i] = result
    return out  # type: ignore[return-value]


def _train_sorted(jobs: list[ClientJob], env: ClientEnv) -> list[ClientResult]:
    started = time.perf_counter()
    strategy = env.strategy
    device = jobs[0].device
    spec0 = jobs[0].client.spec
    model = template(spec0.model, device, env.build)
    param_names = [n for n, _ in model.named_parameters()]
    fast = default_exchange(strategy)
    ctxs, starts, gens, xs, ys = _start(jobs, env, fast, device)
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
    x_all = torch.cat(xs)
    y_all = torch.cat(ys)
    bs, epochs = spec0.batch_size, spec0.epochs
    # Rows per batched step: a batch never holds more than the largest client's data, so small
    # clients (e.g. 11 samples, batch 32) are not padded to the nominal batch size.
    width = max(1, min(bs, max(sizes)))
    steps_per_epoch = [math.ceil(n / bs) for n in sizes]
    budgets = [
        (math.ceil(epochs * s * j.work_fraction) if j.work_fraction < 1 else epochs * s)
        for s, j in zip(steps_per_epoch, jobs, strict=True)
    ]
    done = [0] * k  # steps taken per client, on the host: which clients a step includes is known here
    t_max = max(steps_per_epoch)
    optimizer = StackedOptimizer(spec0.optimizer, params, lr, momentum, wd)
    steps = torch.zeros(k, dtype=torch.long, device=device)
    loss_sum = torch.zeros(k, dtype=ref.dtype, device=device)
    samples = torch.zeros(k, dtype=torch.long, device=device)
    # client i's batch t holds its shuffled samples t*bs ... t*bs+bs-1 (as the sequential loop);
    # where each client's j-th shuffled sample goes in the (k, t_max, width) layout is fixed, so
    # an epoch's indices are one scatter of the clients' permutations
    slot, mask, base = _layout(tuple(sizes), bs, t_max, width)
    mask = mask.view(k, t_max, width).to(device, dtype=ref.dtype)
    for _ in range(epochs):
        idx = torch.zeros(k * t_max * width, dtype=torch.long)
        idx[slot] = (
            torch.cat([torch.randperm(n, generator=g) for n, g in zip(sizes, gens, strict=True)]) + base
        )
        idx = idx.view(k, t_max, width).to(device)
        for t in range(t_max):
            if env.cancel is not None and env.cancel.is_set():
                raise CancelledError("cancelled")
            on = [t < steps_per_epoch[i] and done[i] < budgets[i] for i in range(k)]
            # clients are ordered by steps per epoch (train_group), so those still training are
            # (nearly) a prefix: the step computes only up to the last of them
            m = max((i + 1 for i in range(k) if on[i]), default=0)
            if m == 0:
                continue
            for i in range(m):
                done[i] += on[i]
            mt = mask[:m, t]
            counts = mt.sum(1)
            active = torch.tensor(on[:m], device=device)
            gi = idx[:m, t]
            grads, losses = step_fn(
                {n: p_[:m] for n, p_ in params.items()},
                {n: b[:m] for n, b in buffers.items()},
                x_all[gi],
                y_all[gi],
                mt,
            )
            steps[:m] += active.long()
            loss_sum[:m] += torch.where(active, losses.detach(), torch.zeros_like(losses))
            samples[:m] += torch.where(active, counts.long(), torch.zeros_like(counts.long()))
            optimizer.step(grads, active, steps[:m], m)
    return _results(jobs, env, ctxs, starts, {**params, **buffers}, (steps, loss_sum, samples), fast, started)


def _start(jobs: list[ClientJob], env: ClientEnv, fast: bool, device: torch.device) -> tuple[Any, ...]:
    """Each client's starting weights, generator and training data. With the default exchange
    (``fast``) no live module is needed: the message is merged into the stored weights; otherwise
    each client's turn starts as :func:`engine.core.client.start_turn` starts it (its contexts
    are returned for :func:`finish_turn`)."""
    ctxs: list[ClientContext] = []
    if fast:
        starts = [
            overlay(job.state["model"], job.message) if job.receive else dict(job.state["model"])
            for job in jobs
        ]
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
    return ctxs, starts, gens, xs, ys


def _results(
    jobs: list[ClientJob],
    env: ClientEnv,
    ctxs: list[ClientContext],
    starts: list[dict[str, Tensor]],
    by_name: dict[str, Tensor],
    counters: tuple[Tensor, Tensor, Tensor],
    fast: bool,
    started: float,
) -> list[ClientResult]:
    """Each client's result from the stacked weights (``by_name``) and its step, loss and sample
    counters; the batch's wall time is shared equally."""
    strategy, device, k = env.strategy, jobs[0].device, len(jobs)
    steps, loss_sum, samples = counters
    share = (time.perf_counter() - started) / k
    results = []
    if fast and device.type != "cpu":  # states live on the CPU between rounds: one copy per tensor name
        by_name = {n: t.cpu() for n, t in by_name.items()}
    rows = {n: t.unbind(0) for n, t in by_name.items()}
    steps_l, loss_l, samples_l = steps.tolist(), loss_sum.tolist(), samples.tolist()
    for i, job in enumerate(jobs):
        trained = {n: rows[n][i] for n in starts[i]}
        n_steps = steps_l[i]
        fit = FitStats(loss_l[i] / max(n_steps, 1), n_steps, samples_l[i])
        if fast:
            model_state = trained
            result = ClientResult(
                job.client,
                strategy.shared_part(model_state),
                len(job.data.train),
                {"model": model_state, "extra": job.state.get("extra", {})},
                {
                    "train_loss": fit.loss if n_steps else float("nan"),
                    "steps": float(n_steps),
                    "samples_seen": float(fit.samples),
                },
            )
        else:
            ctx = ctxs[i]
            load_into(ctx.model, trained)
            ctx.fit_stats.append(fit)
            result = finish_turn(job, ctx, started)
        result.metrics["wall_s"] = share
        results.append(result)
    return results


@lru_cache(maxsize=64)
def _layout(sizes: tuple[int, ...], bs: int, t_max: int, width: int) -> tuple[Tensor, Tensor, Tensor]:
    """Where each client's j-th shuffled sample sits in the flattened ``(k, t_max, width)`` batch
    layout (``slot``), which slots hold a sample (``mask``), and each sample's offset into the
    concatenated data (``base``). Fixed for a group, so cached across rounds (never mutated)."""
    k = len(sizes)
    slot = torch.cat(
        [(i * t_max + torch.arange(n) // bs) * width + torch.arange(n) % bs for i, n in enumerate(sizes)]
    )
    mask = torch.zeros(k * t_max * width)
    mask[slot] = 1
    offsets = [0, *accumulate(sizes)][:-1]
    base = torch.tensor(offsets, dtype=torch.long).repeat_interleave(torch.tensor(sizes, dtype=torch.long))
    return slot, mask, base
