"""One client's turn as a plain function of plain values: ``run_client(job) -> ClientResult``.

Every executor (sequential, threads, vectorized fallback, Ray) calls this same function, so a
client's work does not depend on where it runs. State comes in and goes out as CPU state dicts;
the live module is a per-thread template re-loaded each turn, so memory grows with parameters,
not with modules and optimisers per client.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from threading import Event
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from engine.core.seeding import generator
from engine.core.state import detach, load_into, snapshot, to_device
from engine.data import ClientData, Split
from engine.models import FedModel
from engine.types import ClientContext, ClientInfo, ClientResult

if TYPE_CHECKING:
    from engine.strategies.base import Strategy

Builder = Callable[[dict[str, Any]], FedModel]


@dataclass
class ClientEnv:
    """What every client turn of a run shares: the strategy, the task, the run seed, the model
    factory and the run's cancel event."""

    strategy: Strategy
    task: str
    seed: int
    build: Builder
    cancel: Event | None = None
    log: Callable[[str], None] = lambda message: None


@dataclass
class ClientJob:
    """Everything one client's turn needs."""

    client: ClientInfo
    round: int
    state: dict[str, Any]
    message: dict[str, Any]
    data: ClientData
    public: Split | None
    device: torch.device
    receive: bool = True
    work_fraction: float = 1.0
    privacy: Any = None
    """DP-SGD settings of the client (:class:`engine.privacy.dpsgd.DPSettings`) or ``None``."""


_templates = threading.local()


def template(spec: dict[str, Any], device: torch.device, build: Builder) -> FedModel:
    """This thread's reusable module for a model spec on ``device`` (weights are overwritten by
    whoever uses it). ``build`` is part of the key: pass a hashable factory such as
    :class:`engine.models.ModelFactory`, so federations with different input shapes never share."""
    import json

    cache = getattr(_templates, "models", None)
    if cache is None:
        cache = _templates.models = {}
    key = (json.dumps(spec, sort_keys=True), str(device), build)
    model = cache.get(key)
    if model is None:
        model = cache[key] = build(spec).to(device)
    return model


def start_turn(job: ClientJob, env: ClientEnv) -> ClientContext:
    """Load the client's state into this thread's module, build its context and apply the
    message it received (``receive``), ready for ``local_update``."""
    strategy, build, device = env.strategy, env.build, job.device
    model = template(job.client.spec.model, device, build)
    load_into(model, job.state["model"])

    def build_on_device(spec: dict[str, Any]) -> FedModel:
        return template(spec, device, build)

    public_x = public_y = None
    if job.public is not None:
        public_x = job.data.transform(job.public.x.to(device))
        public_y = job.public.y.to(device)
    ctx = ClientContext(
        client=job.client,
        round=job.round,
        model=model,
        state=to_device(dict(job.state.get("extra", {})), device),
        received=to_device(job.message, device),
        x=job.data.train.x.to(device),
        y=job.data.train.y.to(device),
        public_x=public_x,
        public_y=public_y,
        task=env.task,
        device=device,
        generator=generator(env.seed, "client", job.client.id, "round", job.round),
        strategy=strategy,
        build=build_on_device,
        cancel=env.cancel,
        work_fraction=job.work_fraction,
        privacy=job.privacy,
    )
    if job.receive:
        strategy.receive(ctx)
    return ctx


def finish_turn(job: ClientJob, ctx: ClientContext, started: float) -> ClientResult:
    """Collect the payload, the new state and the turn's figures after ``local_update``."""
    memo: dict[tuple, Tensor] = {}
    state = {"model": detach(snapshot(ctx.model), memo), "extra": detach(ctx.state, memo)}
    payload = detach(ctx.strategy.payload(ctx), memo)
    steps = sum(s.steps for s in ctx.fit_stats)
    loss = (sum(s.loss * s.steps for s in ctx.fit_stats) / steps) if steps else float("nan")
    metrics = {
        "train_loss": loss,
        "steps": float(steps),
        "samples_seen": float(sum(s.samples for s in ctx.fit_stats)),
        "wall_s": time.perf_counter() - started,
        **ctx.metrics,
    }
    private = [s for s in ctx.fit_stats if s.private_steps]
    if private:  # what the privacy accountant counts (engine/privacy/ledger.py)
        seen = sum(s.samples for s in private)
        metrics["dp_steps"] = float(sum(s.private_steps for s in private))
        metrics["dp_clipped"] = sum(s.clipped * s.samples for s in private) / seen if seen else 0.0
    return ClientResult(job.client, payload, len(job.data.train), state, metrics)


def run_client(job: ClientJob, env: ClientEnv) -> ClientResult:
    """Receive, train and reply for one client; return its new state and payload."""
    started = time.perf_counter()
    ctx = start_turn(job, env)
    env.strategy.local_update(ctx)
    return finish_turn(job, ctx, started)
