"""The virtual clock: what the simulated clients' hardware would take, round by round.

System model as in FedScale (Lai et al. 2022, arXiv:2105.11367) and the synchronous FedAvg
deployment of Bonawitz et al. 2019 (arXiv:1902.01046): each client has a device tier
(:mod:`engine.hardware.tiers`); in a round

- a client is **online** with probability ``availability`` (offline clients cannot be selected);
- a selected client **drops out** before reporting with probability ``dropout``;
- its time is **compute** = samples x 3 x forward FLOPs per sample / tier FLOP/s (forward plus a
  backward of about twice the forward) plus **transfer** = 8 x bytes down / downlink + 8 x bytes
  up / uplink (the bytes the engine actually counted);
- the round lasts as long as the slowest participant; with a ``deadline`` the server stops
  waiting then, and a straggler's update is dropped (``deadline_policy="drop"``) or it is told
  beforehand to do only the share of its local work that fits (``"partial"``).

The loop calls :meth:`VirtualClock.online` -> :meth:`VirtualClock.select` (through the
strategy's ``select``) -> :meth:`VirtualClock.plan` (before training: dropouts, certain
stragglers, work fractions) -> the executor -> :meth:`VirtualClock.settle` (after training: actual
times from the actual work and bytes, which updates the server accepts, round metrics).

Random draws come from ``numpy_rng(seed, "clock", purpose, round, client name)``: the same seed
gives the same availability and dropouts for a client whatever other clients exist. Clients
without a tier are ideal: always online, never drop out, take no simulated time. When no client
has a tier the clock is inactive and adds no metrics.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from engine.core.seeding import numpy_rng
from engine.hardware.tiers import Tier, client_tier, resolve_tiers
from engine.types import ClientInfo, ClientResult

TRAIN_FACTOR = 3
"""Training FLOPs per sample = ``TRAIN_FACTOR`` x forward FLOPs (backward costs about two forwards)."""

OK, STRAGGLER, DROPOUT, PARTIAL = 0, 1, 2, 3
STATUS = {OK: "ok", STRAGGLER: "straggler (update dropped)", DROPOUT: "dropped out", PARTIAL: "partial work"}
"""The ``status`` client metric: what happened to a selected client's round."""

_TOL = 1e-9

Select = Callable[[list[ClientInfo], np.random.Generator, float], list[ClientInfo]]


def compute_seconds(samples: float, flops_per_sample: float, tier_flops: float) -> float:
    """Simulated seconds to train on ``samples`` samples (forward + backward) at ``tier_flops``."""
    return samples * TRAIN_FACTOR * flops_per_sample / tier_flops


def transfer_seconds(down_bytes: float, up_bytes: float, tier: Tier) -> float:
    """Simulated seconds to receive ``down_bytes`` and send ``up_bytes`` over the tier's links."""
    return 8.0 * down_bytes / tier.down_bps + 8.0 * up_bytes / tier.up_bps


@dataclass
class ClientPlan:
    """What the clock decided for one selected client before it trains.

    :param dropped: the client will not report (it drops out, or it certainly misses the deadline).
    :param work_fraction: share of its local steps it does (``partial`` deadline policy).
    :param status: the planned :data:`STATUS` code.
    :param est_compute_s: estimated compute seconds for its full work.
    :param est_transfer_s: estimated transfer seconds (bytes down known, bytes up estimated).
    :param dropout_at: for a dropout, the share of its work done when it vanished.
    """

    dropped: bool = False
    work_fraction: float = 1.0
    reason: str = ""
    status: int = OK
    est_compute_s: float = 0.0
    est_transfer_s: float = 0.0
    dropout_at: float = 1.0


@dataclass
class RoundTiming:
    """The clock's verdict on a finished round."""

    kept: list[ClientResult]
    round_metrics: dict[str, float] = field(default_factory=dict)
    client_metrics: dict[int, dict[str, float]] = field(default_factory=dict)
    events: list[tuple[str, str]] = field(default_factory=list)


class VirtualClock:
    """Simulated time, availability, dropouts and deadlines for one run.

    :param config: the :class:`~engine.config.ExperimentConfig` (``seed``, ``deadline``,
        ``deadline_policy``, ``selection``, ``tiers`` and each client's ``tier``/``tier_overrides``).
    :param clients: the roster.
    :param flops: forward FLOPs per sample of each client's model.
    :param param_bytes: bytes of each client's model, the transfer estimate before any round has
        measured the real messages (default: none).
    """

    def __init__(
        self,
        config: Any,
        clients: list[ClientInfo],
        flops: dict[int, int],
        param_bytes: dict[int, int] | None = None,
    ) -> None:
        self.config = config
        self.clients = clients
        self.flops = flops
        self.param_bytes = dict(param_bytes or {})
        self.seed = int(config.seed)
        self.deadline: float | None = getattr(config, "deadline", None)
        self.policy: str = getattr(config, "deadline_policy", "drop")
        self.selection: str = getattr(config, "selection", "random")
        catalogue = resolve_tiers(getattr(config, "tiers", None))
        self.tiers: dict[int, Tier | None] = {
            c.id: client_tier(c.spec.tier, getattr(c.spec, "tier_overrides", None), catalogue)
            for c in clients
        }
        self.active = any(t is not None for t in self.tiers.values())
        self.elapsed = 0.0
        self.last_down: dict[int, int] = {}
        self.last_up: dict[int, int] = {}
        self.work_factor: dict[int, float] = {}
        self._joined: list[ClientInfo] = []
        self._offline: list[ClientInfo] = []

    # ---- estimates --------------------------------------------------------------------------
    def estimate(self, client: ClientInfo, down_bytes: int | None = None) -> tuple[float, float]:
        """``(compute_s, transfer_s)`` expected for ``client``'s full work this round.

        Work: its training samples x epochs (scaled by the work its strategy did last time, for
        strategies that train more than once per round). Bytes down: ``down_bytes`` if known, else
        last round's, else its model size; bytes up: last round's, else the same as down.
        """
        tier = self.tiers.get(client.id)
        if tier is None:
            return 0.0, 0.0
        samples = client.n_train * client.spec.epochs * self.work_factor.get(client.id, 1.0)
        compute = compute_seconds(samples, self.flops.get(client.id, 0), tier.flops)
        down = (
            down_bytes
            if down_bytes is not None
            else self.last_down.get(client.id, self.param_bytes.get(client.id, 0))
        )
        up = self.last_up.get(client.id, down)
        return compute, transfer_seconds(down, up, tier)

    # ---- before training ----------------------------------------------------------------------
    def online(self, rnd: int, candidates: list[ClientInfo], rng: np.random.Generator) -> list[ClientInfo]:
        """The candidates that are online this round (each with its tier's availability)."""
        self._joined = list(candidates)
        if not self.active:
            self._offline = []
            return list(candidates)
        online, offline = [], []
        for c in candidates:
            tier = self.tiers.get(c.id)
            up = (
                tier is None
                or numpy_rng(self.seed, "clock", "online", rnd, c.name).random() < tier.availability
            )
            (online if up else offline).append(c)
        self._offline = offline
        return online

    def select(
        self,
        rnd: int,
        online: list[ClientInfo],
        rng: np.random.Generator,
        fraction: float,
        strategy_select: Select,
    ) -> list[ClientInfo]:
        """The clients that train, under the config's ``selection`` policy.

        ``random``: the strategy's ``select`` over the online clients with ``fraction``; ``all``:
        every online client, whatever ``fraction``; ``deadline_aware``: ``fraction`` of the online
        clients, those expected to finish within the deadline first (at random among them), the
        rest filled at random. The strategy's ``select`` always has the last word (a reference
        strategy that trains nobody still trains nobody).
        """
        if self.selection == "all":
            return strategy_select(online, rng, 1.0)
        if self.selection == "deadline_aware" and self.deadline is not None and online:
            k = min(len(online), max(1, round(fraction * len(online))))
            fits = [c for c in online if sum(self.estimate(c)) <= self.deadline * (1 + _TOL)]
            fit_ids = {c.id for c in fits}
            rest = [c for c in online if c.id not in fit_ids]
            if len(fits) >= k:
                chosen = [fits[i] for i in rng.choice(len(fits), size=k, replace=False)]
            else:
                extra = rng.choice(len(rest), size=k - len(fits), replace=False)
                chosen = fits + [rest[i] for i in extra]
            return strategy_select(sorted(chosen, key=lambda c: c.id), rng, 1.0)
        return strategy_select(online, rng, fraction)

    def plan(
        self, rnd: int, selected: list[ClientInfo], down_bytes: dict[int, int], rng: np.random.Generator
    ) -> dict[int, ClientPlan]:
        """Per selected client, before it trains: does it drop out, does it certainly miss the
        deadline (then it does not train at all), and under ``partial`` which share of its local
        steps fits in the deadline."""
        plans: dict[int, ClientPlan] = {}
        for c in selected:
            tier = self.tiers.get(c.id)
            if tier is None:
                plans[c.id] = ClientPlan()
                continue
            draw_drop, draw_when = numpy_rng(self.seed, "clock", "dropout", rnd, c.name).random(2)
            compute, transfer = self.estimate(c, down_bytes.get(c.id, 0))
            plan = plans[c.id] = ClientPlan(est_compute_s=compute, est_transfer_s=transfer)
            if draw_drop < tier.dropout:
                plan.dropped, plan.status, plan.dropout_at = True, DROPOUT, float(draw_when)
                plan.reason = "dropped out during the round"
                continue
            deadline = self.deadline
            if deadline is None or compute + transfer <= deadline * (1 + _TOL):
                continue
            download = transfer_seconds(down_bytes.get(c.id, 0), 0, tier)
            if self.policy == "drop":
                if compute + download > deadline * (1 + _TOL):  # misses it even before uploading
                    plan.dropped, plan.status = True, STRAGGLER
                    plan.reason = f"needs ~{compute + transfer:.3g} s, deadline {deadline:g} s"
                continue
            fraction = self._fitting_fraction(c, compute, deadline - transfer)
            if fraction <= 0:
                plan.dropped, plan.status = True, STRAGGLER
                plan.reason = (
                    f"its transfers alone take ~{transfer:.3g} s, deadline {deadline:g} s"
                    if transfer >= deadline
                    else f"not one mini-batch fits in the {deadline:g} s deadline"
                )
            else:
                plan.work_fraction, plan.status = fraction, PARTIAL
                plan.reason = f"does {fraction:.0%} of its local steps to meet the {deadline:g} s deadline"
        return plans

    @staticmethod
    def _fitting_fraction(client: ClientInfo, compute: float, available: float) -> float:
        """The ``work_fraction`` for :func:`engine.core.training.fit` whose steps take at most
        ``available`` of the ``compute`` seconds of the full work (0 when not one step fits).

        ``fit`` runs ``ceil(total_steps x fraction)`` steps; counting every step as a full batch
        (the last batch of an epoch may be smaller) keeps the real work within ``available``."""
        if available <= 0 or compute <= 0:
            return 0.0 if available <= 0 else 1.0
        spec = client.spec
        total_steps = spec.epochs * math.ceil(client.n_train / spec.batch_size) if client.n_train else 0
        if total_steps == 0:
            return 1.0
        steps = math.floor(available / compute * client.n_train * spec.epochs / spec.batch_size)
        if steps < 1:
            return 0.0
        return min(1.0, (steps - 0.5) / total_steps)

    # ---- after training ---------------------------------------------------------------------------
    def settle(
        self,
        rnd: int,
        results: list[ClientResult],
        plans: dict[int, ClientPlan],
        up_bytes: dict[int, int],
        down_bytes: dict[int, int],
        extra_ops: Mapping[int, float] | None = None,
    ) -> RoundTiming:
        """Actual simulated times from the work done and the bytes exchanged; which results the
        server accepts (stragglers past the deadline are dropped); round and client metrics.

        :param extra_ops: work per client beyond training, in operations of its tier's FLOP/s
            (secure aggregation's key agreements and masks: :mod:`engine.privacy.secagg`)."""
        if not self.active:
            return RoundTiming(kept=list(results))
        by_id = {r.client.id: r for r in results}
        info = {c.id: c for c in self.clients}
        deadline = self.deadline
        kept_ids: set[int] = set()
        client_metrics: dict[int, dict[str, float]] = {}
        events: list[tuple[str, str]] = []
        occupancy: list[float] = []
        counts = {OK: 0, STRAGGLER: 0, DROPOUT: 0, PARTIAL: 0}
        for cid, plan in plans.items():
            c, tier = info[cid], self.tiers.get(cid)
            result = by_id.get(cid)
            if tier is None:
                if result is not None:
                    kept_ids.add(cid)
                client_metrics[cid] = {"status": float(OK)}
                counts[OK] += 1
                continue
            down = down_bytes.get(cid, 0)
            if plan.status == DROPOUT:
                compute = plan.dropout_at * plan.est_compute_s
                transfer = transfer_seconds(down, 0, tier)
                status, busy = DROPOUT, compute + transfer
                events.append(
                    (
                        "warning",
                        (
                            f"round {rnd}: {c.name} dropped out during the round "
                            f"(after ~{busy:.3g} simulated s); its update is lost"
                        ),
                    )
                )
            elif result is None:  # certain straggler, never trained
                compute, transfer = plan.est_compute_s, plan.est_transfer_s
                status, busy = STRAGGLER, compute + transfer
                events.append(
                    (
                        "warning",
                        (
                            f"round {rnd}: {c.name} cannot meet the deadline ({plan.reason}); "
                            f"not trained, dropped"
                        ),
                    )
                )
            else:
                full = c.n_train * c.spec.epochs
                samples = float(result.metrics.get("samples_seen", full * plan.work_fraction))
                compute = compute_seconds(samples, self.flops.get(cid, 0), tier.flops)
                compute += float((extra_ops or {}).get(cid, 0.0)) / tier.flops
                up = up_bytes.get(cid, 0)
                transfer = transfer_seconds(down, up, tier)
                busy = compute + transfer
                self.last_down[cid], self.last_up[cid] = int(down), int(up)
                if plan.work_fraction >= 1 and full > 0:
                    self.work_factor[cid] = samples / full
                if deadline is not None and busy > deadline * (1 + _TOL):
                    status = STRAGGLER
                    events.append(
                        (
                            "warning",
                            (
                                f"round {rnd}: {c.name} missed the {deadline:g} s deadline "
                                f"(needed {busy:.3g} s); its update is dropped"
                            ),
                        )
                    )
                else:
                    status = PARTIAL if plan.work_fraction < 1 else OK
                    kept_ids.add(cid)
            counts[status] += 1
            occupancy.append(busy if deadline is None else min(busy, deadline))
            client_metrics[cid] = {
                "sim_compute_s": compute,
                "sim_transfer_s": transfer,
                "sim_total_s": compute + transfer,
                "status": float(status),
                "work_fraction": plan.work_fraction,
            }
        for c in self._joined:
            client_metrics.setdefault(c.id, {})["online"] = 1.0
        for c in self._offline:
            client_metrics.setdefault(c.id, {})["online"] = 0.0
        if self._offline:
            names = [c.name for c in self._offline]
            more = f" (+{len(names) - 8} more)" if len(names) > 8 else ""
            events.append(
                ("info", f"round {rnd}: {len(names)} client(s) offline: {', '.join(names[:8])}{more}")
            )
        round_s = max(occupancy, default=0.0)
        self.elapsed += round_s
        round_metrics = {
            "sim_round_s": round_s,
            "sim_time_s": self.elapsed,
            "n_online": float(len(self._joined) - len(self._offline)),
            "n_unavailable": float(len(self._offline)),
            "n_dropouts": float(counts[DROPOUT]),
            "n_stragglers": float(counts[STRAGGLER] + counts[PARTIAL]),
            "n_partial": float(counts[PARTIAL]),
            "n_dropped": float(counts[DROPOUT] + counts[STRAGGLER]),
        }
        kept = [r for r in results if r.client.id in kept_ids]
        return RoundTiming(
            kept=kept, round_metrics=round_metrics, client_metrics=client_metrics, events=events
        )

    # ---- checkpoints --------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Elapsed simulated time and the per-client estimates learnt so far (plain numbers)."""
        return {
            "elapsed": self.elapsed,
            "last_down": dict(self.last_down),
            "last_up": dict(self.last_up),
            "work_factor": dict(self.work_factor),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` (older checkpoints with only ``elapsed`` load too)."""
        self.elapsed = float(state.get("elapsed", 0.0))
        self.last_down = {int(k): int(v) for k, v in state.get("last_down", {}).items()}
        self.last_up = {int(k): int(v) for k, v in state.get("last_up", {}).items()}
        self.work_factor = {int(k): float(v) for k, v in state.get("work_factor", {}).items()}
