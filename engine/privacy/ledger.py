"""The per-run privacy ledger of DP-SGD clients: who trains with which noise, how many private
steps each took, the epsilon each has spent after every round, and who has spent their budget.

The round loop asks it, in order: :meth:`ClientLedger.eligible` (clients whose budget the next
round would exceed stop, with an event), :meth:`ClientLedger.settings` (what a client's turn
needs), :meth:`ClientLedger.record` (steps taken -> epsilon per client and round). Its state
is checkpointed with the run.

Accounting per client: each DP-SGD step is a subsampled Gaussian mechanism with the client's
noise multiplier and sampling rate ``batch size / records``; a round adds the steps the client
actually took (``dp_steps``, fewer for partial work). The epsilon after a round is the
accountant's (:func:`engine.privacy.accountant.epsilon`) over the client's whole history, at its
delta. A client that never trains spends nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from engine.privacy.accountant import default_delta, epsilon, fmt_epsilon, noise_for
from engine.privacy.dpsgd import DPSettings, steps_per_epoch

if TYPE_CHECKING:
    from engine.config import ClientSpec
    from engine.types import ClientInfo, ClientResult

_TOL = 1e-9


@dataclass
class Plan:
    """A DP-SGD client's resolved settings for a run."""

    settings: DPSettings
    sample_rate: float
    delta: float
    accountant: str
    budget: float | None
    calibrated: bool
    steps_per_round: int
    rounds: int
    """Rounds the client may train (from its join round to the end)."""

    def describe(self, name: str) -> str:
        """One sentence for the run's events."""
        how = (
            f"calibrated to spend epsilon {fmt_epsilon(self.budget)} over {self.rounds} round(s) of "
            f"{self.steps_per_round} step(s)"
            if self.calibrated
            else "as set"
        )
        stop = (
            f"; stops when epsilon would exceed {fmt_epsilon(self.budget)}"
            if self.budget is not None and not self.calibrated
            else ""
        )
        return (
            f"{name}: DP-SGD, clipping norm {self.settings.clip_norm:g}, noise multiplier "
            f"{self.settings.noise_multiplier:.3g} ({how}), Poisson sampling rate {self.sample_rate:.3g}, "
            f"delta {self.delta:.3g}, {self.accountant.upper()} accountant{stop}"
        )


def plan(spec: ClientSpec, n_train: int, rounds: int) -> Plan | None:
    """Resolve a client's ``privacy`` settings for ``n_train`` training records and a run of
    ``rounds`` rounds: the sampling rate, delta (default ``1/n``) and, when only a target epsilon
    is given, the noise multiplier that spends it over every round the client could train
    (``epochs x ceil(n / batch size)`` steps each). ``None`` without privacy or without data.

    :raises ConfigError: the target epsilon cannot be reached (names what to change); Opacus missing.
    """
    p = spec.privacy
    if p is None or n_train <= 0:
        return None
    rate = min(1.0, spec.batch_size / n_train)
    delta = p.delta if p.delta is not None else default_delta(n_train)
    per_round = spec.epochs * steps_per_epoch(n_train, spec.batch_size)
    trains = max(0, rounds - spec.join_round + 1)
    sigma = p.noise_multiplier
    calibrated = sigma is None
    if sigma is None:
        assert p.target_epsilon is not None
        sigma = noise_for(
            float(p.target_epsilon), float(delta), float(rate), int(per_round * max(1, trains)), p.accountant
        )
    return Plan(
        DPSettings(float(p.clip_norm), float(sigma)),
        rate,
        float(delta),
        p.accountant,
        None if p.target_epsilon is None else float(p.target_epsilon),
        calibrated,
        per_round,
        trains,
    )


@dataclass
class Entry:
    """One client's account: its plan, the steps it took per round and the epsilon after each."""

    plan: Plan
    history: list[tuple[float, float, int]] = field(default_factory=list)
    spent: float = 0.0
    stopped_at: int | None = None
    last_steps: int = 0


class ClientLedger:
    """DP-SGD accounting for the clients of one run.

    :param clients: the run's clients (``ClientInfo``; those with ``spec.privacy`` are tracked).
    :param rounds: the run's rounds.
    :param log: where events go (``log(message, level)``).
    """

    def __init__(
        self,
        clients: Sequence[ClientInfo],
        rounds: int,
        log: Callable[..., None] = lambda message, level="info": None,
    ) -> None:
        self.log = log
        self.names = {c.id: c.name for c in clients}
        self.entries: dict[int, Entry] = {}
        for c in clients:
            resolved = plan(c.spec, c.n_train, rounds)
            if resolved is not None:
                self.entries[c.id] = Entry(resolved)
                log(resolved.describe(c.name))

    def __bool__(self) -> bool:
        return bool(self.entries)

    def settings(self, client_id: int) -> DPSettings | None:
        """The DP-SGD settings of a client's turn (``None``: it trains without DP)."""
        entry = self.entries.get(client_id)
        return entry.plan.settings if entry is not None else None

    def _epsilon(self, entry: Entry, extra: int = 0) -> float:
        history = list(entry.history)
        if extra:
            history.append((entry.plan.settings.noise_multiplier, entry.plan.sample_rate, extra))
        return epsilon(history, entry.plan.delta, entry.plan.accountant)

    def eligible(self, rnd: int, candidates: list[ClientInfo]) -> list[ClientInfo]:
        """The candidates that may train this round: a client whose next round would take its
        epsilon past its budget stops training for the rest of the run (an event says so; it is
        still evaluated). The next round is counted as its full steps, or as many as it took
        last time if its strategy trains more than its epochs."""
        out = []
        for c in candidates:
            entry = self.entries.get(c.id)
            if entry is None or entry.plan.budget is None:
                out.append(c)
                continue
            if entry.stopped_at is None:
                steps = max(entry.plan.steps_per_round, entry.last_steps)
                after = self._epsilon(entry, steps)
                if after > entry.plan.budget * (1 + _TOL) + _TOL:
                    entry.stopped_at = rnd
                    self.log(
                        f"round {rnd}: {c.name} stops training: its privacy budget epsilon "
                        f"{fmt_epsilon(entry.plan.budget)} is spent (epsilon {fmt_epsilon(entry.spent)} so "
                        f"far; one more round would reach {fmt_epsilon(after)}). It keeps its model and is "
                        f"still evaluated",
                        "warning",
                    )
            if entry.stopped_at is None:
                out.append(c)
        return out

    def record(
        self,
        rnd: int,
        results: Sequence[ClientResult],
        per_client: dict[int, dict[str, float]],
        round_metrics: dict[str, float],
    ) -> None:
        """Add the private steps each client took this round to its history and write the
        figures: per client ``epsilon`` (spent so far, every round for every DP client),
        ``dp_noise_multiplier``, ``dp_sample_rate``, ``dp_delta`` and ``budget_spent``; per round
        ``epsilon_max`` and ``n_budget_spent``."""
        if not self.entries:
            return
        for r in results:
            entry = self.entries.get(r.client.id)
            steps = int(r.metrics.get("dp_steps", 0) or 0)
            if entry is None or steps <= 0:
                continue
            entry.history.append((entry.plan.settings.noise_multiplier, entry.plan.sample_rate, steps))
            entry.last_steps = steps
            entry.spent = self._epsilon(entry)
        for cid, entry in self.entries.items():
            m = per_client.setdefault(cid, {})
            m.update(
                {
                    "epsilon": entry.spent,
                    "dp_noise_multiplier": entry.plan.settings.noise_multiplier,
                    "dp_sample_rate": entry.plan.sample_rate,
                    "dp_delta": entry.plan.delta,
                    "budget_spent": 1.0 if entry.stopped_at is not None else 0.0,
                }
            )
        round_metrics["epsilon_max"] = max(e.spent for e in self.entries.values())
        round_metrics["n_budget_spent"] = float(sum(e.stopped_at is not None for e in self.entries.values()))

    def summary(self, client_id: int) -> dict[str, Any] | None:
        """A client's privacy settings and spend (``None`` without DP-SGD)."""
        entry = self.entries.get(client_id)
        if entry is None:
            return None
        p = entry.plan
        return {
            "mechanism": "DP-SGD",
            "clip_norm": p.settings.clip_norm,
            "noise_multiplier": p.settings.noise_multiplier,
            "sample_rate": p.sample_rate,
            "delta": p.delta,
            "accountant": p.accountant,
            "budget": p.budget,
            "calibrated": p.calibrated,
            "epsilon": entry.spent,
            "steps": sum(n for _, _, n in entry.history),
            "stopped_at": entry.stopped_at,
        }

    # ---- checkpoints ----------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Histories, spends and stops (plain values)."""
        return {
            str(cid): {
                "history": [list(h) for h in e.history],
                "spent": e.spent,
                "stopped_at": e.stopped_at,
                "last_steps": e.last_steps,
            }
            for cid, e in self.entries.items()
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` (clients it does not name start fresh)."""
        for cid, e in self.entries.items():
            saved = state.get(str(cid))
            if not saved:
                continue
            e.history = [(float(s), float(q), int(n)) for s, q, n in saved["history"]]
            e.spent = float(saved["spent"])
            e.stopped_at = None if saved.get("stopped_at") is None else int(saved["stopped_at"])
            e.last_steps = int(saved.get("last_steps", 0))
