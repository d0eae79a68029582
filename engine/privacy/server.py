"""Server-side privacy for the strategies that average models: user-level DP-FedAvg and secure
aggregation, as the one mean the server computes per group and round.

**DP-FedAvg** (McMahan, Ramage, Talwar & Zhang 2018, "Learning Differentially Private Recurrent
Language Models", arXiv:1710.06963): each reporting client's update ``Delta_k = w_k - w`` is
clipped to L2 norm ``C`` (over all shared tensors together), the clipped updates are summed with
equal weights (user-level: every client counts once, whatever its data size), Gaussian noise
``N(0, (z C)^2)`` is added per coordinate, and the sum is divided by the *expected* number of
reporting clients ``q x m`` (the fixed-denominator estimator, whose sensitivity is ``C / (q m)``
whoever takes part; ``m`` counts the online clients of the group, each weighted by the chance it
does not drop out). The new global model is ``w + mean`` (a server optimiser then steps along it:
post-processing).

**Adaptive clipping** (Andrew, Thakkar, McMahan & Ramaswamy 2021, "Differentially Private Learning
with Adaptive Clipping", NeurIPS, arXiv:1905.03871): each client also reports whether its update
was within ``C``; the server adds ``N(0, sigma_b^2)`` to the count of such clients and moves the
norm geometrically towards the ``target_quantile``: ``C <- C exp(-eta (b - gamma))`` with ``b``
the noisy share. The two releases compose to one Gaussian mechanism of noise multiplier
``(z_Delta^-2 + (2 sigma_b)^-2)^-1/2`` (the paper's Theorem 1): given the user's ``z`` the update's
own noise is ``z_Delta = (z^-2 - (2 sigma_b)^-2)^-1/2``.

**Client sampling.** The accountants assume each client takes part in a round independently with
probability ``q``; with server DP clients are therefore selected by Poisson sampling at ``q =
fraction`` among the online ones (not a fixed-size sample). Availability and dropouts only lower a
client's chance to take part below ``q``, so accounting at ``q`` is conservative. Each round is one
step of the accountant for every group, whether or not any of its clients was sampled.

**Secure aggregation** (:mod:`engine.privacy.secagg`): the server receives masked uploads and
learns only the group's sum: the sample-weighted sum and the total weight for FedAvg, the sum of
clipped updates (and of the "within C" bits) under DP-FedAvg, to which it then adds the noise.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

from engine.core.seeding import generator
from engine.errors import ConfigError
from engine.privacy import secagg
from engine.privacy.accountant import default_delta, epsilon, fmt_epsilon, noise_for

if TYPE_CHECKING:
    from engine.config import ExperimentConfig
    from engine.strategies.base import Strategy
    from engine.types import ClientInfo


def averaging(cls: type) -> bool:
    """Whether a strategy's server only averages models per group (the default ``aggregate``)."""
    from engine.strategies.base import Strategy

    return bool(cls.collaborates) and cls.aggregate is Strategy.aggregate


def update_noise(z: float, count_noise: float | None) -> float:
    """The noise multiplier of the update sum that, composed with a count released with noise
    ``count_noise`` (adaptive clipping), totals ``z``.

    :raises ConfigError: the count's noise alone already spends more than ``z`` allows.
    """
    if count_noise is None:
        return z
    rest = z**-2 - (2 * count_noise) ** -2
    if rest <= 0:
        raise ConfigError(
            f"server DP: the count of unclipped updates needs noise above {z / 2:.3g} for a total "
            f"noise multiplier of {z:.3g} (it has {count_noise:.3g}); raise the count noise or use "
            f"fixed clipping"
        )
    return rest**-0.5


def flat(state: Mapping[str, Tensor], keys: Sequence[str]) -> Tensor:
    """The floating tensors of ``keys`` as one float64 vector."""
    return (
        torch.cat([state[k].detach().reshape(-1).to("cpu", torch.float64) for k in keys])
        if keys
        else torch.zeros(0, dtype=torch.float64)
    )


def unflat(vector: Tensor, like: Mapping[str, Tensor], keys: Sequence[str]) -> dict[str, Tensor]:
    """:func:`flat` undone in ``like``'s shapes, dtypes and devices."""
    out, start = {}, 0
    for k in keys:
        ref = like[k]
        n = ref.numel()
        out[k] = vector[start : start + n].reshape(ref.shape).to(device=ref.device, dtype=ref.dtype)
        start += n
    return out


@dataclass
class GroupRound:
    """What the server knows about one group in the current round."""

    members: list[int] = field(default_factory=list)
    """Selected clients (they took part in the key agreement)."""
    expected: float = 0.0
    """Expected number of reporting clients (the DP denominator)."""


class PrivateAggregation:
    """The run's server-side privacy (DP-FedAvg and/or secure aggregation), or inactive.

    The round loop calls :meth:`select` (Poisson sampling under DP), :meth:`begin` (who is in each
    group this round), :meth:`traffic` (the protocol's extra bytes and client work, before the
    clock settles the round), the strategy's aggregation calls :meth:`mean` per group, then
    :meth:`record` writes the round's figures.
    """

    def __init__(
        self,
        config: ExperimentConfig,
        clients: Sequence[ClientInfo],
        strategy: Strategy,
        tiers: Mapping[int, Any] | None = None,
        log: Callable[..., None] = lambda message, level="info": None,
    ) -> None:
        self.dp = getattr(config, "server_dp", None)
        self.sa = getattr(config, "secure_aggregation", None)
        self.active = self.dp is not None or self.sa is not None
        self.seed = int(config.seed)
        self.fraction = float(config.fraction)
        self.strategy = strategy
        self.log = log
        self.clients = {c.id: c for c in clients}
        self.tiers = dict(tiers or {})
        self.round = 0
        self.groups: dict[str, GroupRound] = {}
        self.figures: dict[str, float] = {}
        self.client_figures: dict[int, dict[str, float]] = {}
        self.failures: list[str] = []
        self.steps = 0
        self.clip: dict[str, float] = {}
        self.rate = 1.0 if config.selection == "all" else self.fraction
        if self.dp is None:
            return
        n = len(clients)
        self.delta = float(self.dp.delta) if self.dp.delta is not None else default_delta(n)
        z = self.dp.noise_multiplier
        self.calibrated = z is None
        if z is None:
            z = noise_for(
                float(self.dp.target_epsilon), self.delta, self.rate, int(config.rounds), self.dp.accountant
            )
        self.z = float(z)
        m = max(1.0, self.rate * n)
        self.count_noise = None
        if self.dp.clipping == "adaptive":
            self.count_noise = (
                float(self.dp.count_noise) if self.dp.count_noise is not None else max(m / 20, 2 * self.z)
            )
        self.z_update = update_noise(self.z, self.count_noise)
        how = (
            f"calibrated to epsilon {fmt_epsilon(self.dp.target_epsilon)} over {config.rounds} rounds"
            if self.calibrated
            else "as set"
        )
        adaptive = (
            f", adaptive clipping towards the {self.dp.target_quantile:g} quantile (count noise "
            f"{self.count_noise:.3g}, update noise {self.z_update:.3g})"
            if self.count_noise
            else ""
        )
        log(
            f"server DP (DP-FedAvg): clipping norm {self.dp.clip_norm:g}, noise multiplier {self.z:.3g} "
            f"({how}), clients sampled independently with probability {self.rate:g}, delta "
            f"{self.delta:.3g}{adaptive}"
        )

    # ---- before training ---------------------------------------------------------------------------
    def select(
        self, candidates: list[ClientInfo], rng: np.random.Generator, fraction: float
    ) -> list[ClientInfo]:
        """Poisson sampling: every candidate independently with probability ``fraction``."""
        if fraction >= 1:
            return list(candidates)
        draws = rng.random(len(candidates))
        return [c for c, d in zip(candidates, draws, strict=True) if d < fraction]

    def begin(self, rnd: int, online: Sequence[ClientInfo], selected: Sequence[ClientInfo]) -> None:
        """Fix this round's groups: their selected members and expected reporting counts."""
        self.round = rnd
        self.groups = {}
        self.figures = {}
        self.client_figures = {}
        self.failures = []
        for c in online:
            g = self.groups.setdefault(self.strategy.group(c), GroupRound())
            tier = self.tiers.get(c.id)
            g.expected += self.rate * (1.0 - (tier.dropout if tier is not None else 0.0))
        for c in selected:
            self.groups.setdefault(self.strategy.group(c), GroupRound()).members.append(c.id)

    def traffic(
        self, results: Sequence[Any], up: dict[int, int], down: dict[int, int], selected: Sequence[ClientInfo]
    ) -> dict[int, float]:
        """Add secure aggregation's extra bytes to ``up``/``down`` (in place, before the clock
        turns bytes into time) and return each client's protocol work in operations."""
        if self.sa is None:
            return {}
        reported = {r.client.id: r for r in results}
        work: dict[int, float] = {}
        for g in self.groups.values():
            n = len(g.members)
            if n < 2:
                continue
            survivors = [cid for cid in g.members if cid in reported]
            for cid in g.members:
                if cid in reported:
                    elements = (
                        sum(
                            t.numel()
                            for t in reported[cid].payload.values()
                            if isinstance(t, Tensor) and t.is_floating_point()
                        )
                        + 1
                    )
                    extra_up, extra_down = secagg.traffic(n, len(survivors), elements)
                    work[cid] = secagg.client_ops(n, elements)
                else:
                    extra_up, extra_down = secagg.dropout_traffic(n)
                up[cid] = up.get(cid, 0) + extra_up
                down[cid] = down.get(cid, 0) + extra_down
                self.client_figures.setdefault(cid, {}).update(
                    {"secagg_bytes_up": float(extra_up), "secagg_bytes_down": float(extra_down)}
                )
        return work

    # ---- the mean ----------------------------------------------------------------------------------------
    def aggregate(self, results: Sequence[Any]) -> None:
        """The strategy's aggregation (its default ``aggregate``: one mean per group, then its
        ``server_update``, so FedAvgM and FedAdam step along the private mean) with :meth:`mean`
        in place of the sample-weighted mean. Only strategies whose server averages models run
        with server-side privacy (:func:`averaging`, checked before launch)."""
        by_group: dict[str, list[Any]] = {}
        for r in results:
            by_group.setdefault(self.strategy.group(r.client), []).append(r)
        state = self.strategy.state["global"]
        for g, members in by_group.items():
            avg = self.mean(
                [r.payload for r in members],
                [r.n_samples for r in members],
                state[g],
                [r.client.id for r in members],
            )
            state[g] = self.strategy.server_update(g, state[g], avg)

    def mean(
        self,
        states: Sequence[Mapping[str, Tensor]],
        weights: Sequence[float],
        reference: Mapping[str, Tensor],
        who: Sequence[int],
    ) -> dict[str, Tensor]:
        """One group's new average from its reporting clients' payloads (same keys and shapes as
        ``reference``, the group's current global state). On a failed secure round the
        reference comes back unchanged and the round's events say why."""
        group = self.strategy.group(self.clients[int(who[0])])
        info = self.groups.get(group) or GroupRound(members=list(who), expected=float(len(who)))
        keys = [k for k, v in reference.items() if v.is_floating_point()]
        try:
            if self.dp is not None:
                vector = self._dp_mean(states, reference, keys, who, info, group)
            else:
                vector = self._plain_mean(states, weights, keys, who, info, group)
        except secagg.SecureAggregationFailed as exc:
            message = (
                f"round {self.round}: secure aggregation of "
                f"{'the federation' if group == 'all' else 'a group'} "
                f"could not complete: {exc}; the round's updates are discarded"
            )
            self.failures.append(message)
            return dict(reference)
        out = dict(reference)
        out.update(unflat(vector, reference, keys))
        return out

    def _sum(self, vectors: dict[int, Tensor], info: GroupRound, group: str) -> Tensor:
        """The plain or secure sum of the clients' vectors."""
        if self.sa is None:
            return torch.stack(list(vectors.values())).sum(0)
        outcome = secagg.secure_sum(vectors, info.members, self.seed, self.round, group, self.sa.threshold)
        if outcome.dropped:
            self.figures["secagg_recovered"] = self.figures.get("secagg_recovered", 0.0) + len(
                outcome.dropped
            )
        return outcome.total

    def _plain_mean(self, states, weights, keys, who, info, group) -> Tensor:
        total_w = float(sum(weights)) or 1.0
        vectors = {}
        for cid, s, w in zip(who, states, weights, strict=True):
            share = float(w) / total_w  # normalised by the server-announced total (keeps the ring small)
            vectors[int(cid)] = torch.cat([flat(s, keys) * share, torch.tensor([share], dtype=torch.float64)])
        total = self._sum(vectors, info, group)
        return total[:-1] / max(float(total[-1]), 1e-12)

    def _dp_mean(self, states, reference, keys, who, info, group) -> Tensor:
        assert self.dp is not None
        base = flat(reference, keys)
        c = self.clip.setdefault(group, float(self.dp.clip_norm))
        vectors = {}
        norms = []
        for cid, s in zip(who, states, strict=True):
            delta = flat(s, keys) - base
            norm = float(delta.norm())
            norms.append(norm)
            scale = min(1.0, c / (norm + 1e-12))
            vectors[int(cid)] = torch.cat(
                [delta * scale, torch.tensor([1.0 if norm <= c else 0.0], dtype=torch.float64)]
            )
            self.client_figures.setdefault(int(cid), {}).update(
                {"update_norm": norm, "update_clipped": float(norm > c)}
            )
        total = self._sum(vectors, info, group)
        g = generator(self.seed, "server-dp", self.round, group)
        noise = torch.normal(0.0, self.z_update * c, (len(base),), generator=g, dtype=torch.float64)
        denominator = max(info.expected, 1e-12)
        mean = base + (total[:-1] + noise) / denominator
        self.figures["dp_clip_norm"] = float(np.mean(list(self.clip.values())))
        self.figures["dp_clipped_share"] = float(np.mean([n > c for n in norms])) if norms else 0.0
        if self.count_noise is not None:  # Andrew et al.: the noisy share of updates within the norm
            b = (
                float(total[-1]) + float(torch.normal(0.0, self.count_noise, (1,), generator=g))
            ) / denominator
            self.clip[group] = c * math.exp(-self.dp.clip_lr * (b - self.dp.target_quantile))
        return mean

    # ---- after the round ------------------------------------------------------------------------------
    def record(
        self, per_client: dict[int, dict[str, float]], round_metrics: dict[str, float]
    ) -> list[tuple[str, str]]:
        """Write the round's figures (``server_epsilon``, clipping norm, secure-aggregation bytes
        and recoveries) and return its events."""
        if not self.active:
            return []
        for cid, m in self.client_figures.items():
            per_client.setdefault(cid, {}).update(m)
        round_metrics.update(self.figures)
        if self.sa is not None:
            round_metrics["secagg_failed"] = float(len(self.failures))
        if self.dp is not None:
            self.steps += 1
            round_metrics["server_epsilon"] = self.epsilon()
            round_metrics["server_noise_multiplier"] = self.z
        return [("warning", m) for m in self.failures]

    def epsilon(self) -> float:
        """User-level epsilon spent so far (``rounds`` steps at the sampling rate)."""
        if self.dp is None or not self.steps:
            return 0.0
        return epsilon([(self.z, self.rate, self.steps)], self.delta, self.dp.accountant)

    def summary(self) -> dict[str, Any] | None:
        """The run's server-side privacy for model cards: ``server_dp`` (DP-FedAvg's settings and
        the user-level epsilon spent so far) and ``secure_aggregation``, each only when on."""
        out: dict[str, Any] = {}
        if self.dp is not None:
            out["server_dp"] = {
                "mechanism": "DP-FedAvg (user-level)",
                "epsilon": self.epsilon(),
                "delta": self.delta,
                "noise_multiplier": self.z,
                "clip_norm": float(self.dp.clip_norm),
                "clipping": self.dp.clipping,
                "sample_rate": self.rate,
                "rounds": self.steps,
                "accountant": self.dp.accountant,
            }
        if self.sa is not None:
            out["secure_aggregation"] = {
                "mechanism": "secure aggregation (simulated, Bonawitz et al. 2017)",
                "threshold": float(self.sa.threshold),
            }
        return out or None

    def state_dict(self) -> dict[str, Any]:
        return {"steps": self.steps, "clip": dict(self.clip)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.steps = int(state.get("steps", 0))
        self.clip = {str(k): float(v) for k, v in dict(state.get("clip", {})).items()}
