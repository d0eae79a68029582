"""The :class:`engine.tracking.runs.RunManager` methods that launch runs: :meth:`~Launching.submit`
one config, :meth:`~Launching.sweep` one config over seeds and strategies as one group,
:meth:`~Launching.resume` an interrupted, cancelled or failed run from its newest checkpoint, and
:meth:`~Launching.fork` a new config from a run's; with :class:`RunHandle`, a run the manager
queued or is running."""

from __future__ import annotations

import contextvars
import threading
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from engine.errors import ConfigError, FedMosaicError, RunStateError
from engine.tracking.schema import ACTIVE, RESUMABLE
from engine.tracking.variants import as_config, deep_merge, parse, strategy_dict, strategy_label

if TYPE_CHECKING:
    from engine.config import ExperimentConfig


@dataclass
class RunHandle:
    """A run this manager queued or is running."""

    run_id: str
    config: ExperimentConfig
    resume: bool
    cancel: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)
    started: bool = False
    reason: str = ""  # why cancel is set: "user" or "shutdown"
    # the launcher's context: a run launched from the app reads only the allowed roots
    # (engine.access), one launched from the command line any path its user gave
    context: contextvars.Context = field(default_factory=contextvars.copy_context)


class Launching:
    """The :class:`engine.tracking.runs.RunManager` methods that launch runs."""

    def submit(
        self,
        config: ExperimentConfig | Mapping[str, Any],
        *,
        name: str | None = None,
        group_id: str | None = None,
        tags: Iterable[str] = (),
        parent_id: str | None = None,
        variant: str | None = None,
    ) -> str:
        """Queue a run of ``config`` and return its id. It starts as soon as a worker is free.

        The config is validated (:func:`engine.validate.check`) and the database and checkpoint
        folder are checked writable with enough free space before any row is written.

        :param parent_id: the run this config was forked from (recorded for lineage).
        :raises ConfigError: invalid config (:class:`CompatibilityError` when the strategy cannot
            combine the roster).
        :raises StorageError: the database or data directory cannot take a run.
        """
        config = as_config(config)
        self._check_open()
        self._validate(config)
        self.store.check_writable()
        run_id = self.store.create_run(
            config.model_dump(mode="json"),
            status="queued",
            name=name,
            group_id=group_id,
            tags=tags,
            owner=self.owner,
            variant=variant,
            parent_id=parent_id,
        )
        self._enqueue(RunHandle(run_id, config, resume=False))
        return run_id

    def sweep(
        self,
        config: ExperimentConfig | Mapping[str, Any],
        *,
        seeds: Iterable[int],
        strategies: list[dict[str, Any] | str] | None = None,
        name: str | None = None,
        tags: Iterable[str] = (),
        defences: list[dict[str, Any] | str] | None = None,
    ) -> tuple[str, list[str]]:
        """Launch ``config`` once per seed and strategy (and defence), as one group.

        :param strategies: ``{"name": ..., **params}`` dicts (or bare names) replacing
            ``config.strategy``; ``None`` keeps the config's strategy.
        :param defences: ``{"name": ..., **params}`` dicts (or names) replacing ``config.defence``,
            each run with every strategy; with more than one, variants read ``strategy · defence``.
        :returns: ``(group_id, run_ids)``; runs of one strategy share a ``variant`` label, so
            their figures can be averaged over seeds.
        :raises ConfigError: no seed, a strategy listed twice, or any member invalid (nothing is
            launched then).
        """
        config = as_config(config)
        self._check_open()
        seeds = list(dict.fromkeys(int(s) for s in seeds))
        if not seeds:
            raise ConfigError("a sweep needs at least one seed, e.g. seeds [0, 1, 2]")
        if any(s < 0 or s > 2**31 - 1 for s in seeds):
            raise ConfigError("sweep seeds must be between 0 and 2147483647")
        base = config.model_dump(mode="json")
        specs = [strategy_dict(s) for s in (strategies or [base["strategy"]])]
        guards = [strategy_dict(d) for d in (defences or [base["defence"]])]
        members: list[tuple[str, int, ExperimentConfig]] = []
        labels: list[str] = []
        for spec in specs:
            for guard in guards:
                label = strategy_label(spec)
                if len(guards) > 1:
                    from engine.robustness.design import defence_label

                    label = f"{label} · {defence_label(guard)}"
                if label in labels:
                    raise ConfigError(f"the sweep lists '{label}' twice; remove one")
                labels.append(label)
                for seed in seeds:
                    members.append(
                        (label, seed, parse({**base, "strategy": spec, "defence": guard, "seed": seed}))
                    )
        for _, _, member in members:
            self._validate(member)
        self.store.check_writable()
        group_id = uuid.uuid4().hex[:12]
        title = name or config.name
        created: list[str] = []
        try:
            for label, seed, member in members:
                created.append(
                    self.store.create_run(
                        member.model_dump(mode="json"),
                        status="queued",
                        name=f"{title} · {label} · seed {seed}",
                        group_id=group_id,
                        tags=tags,
                        owner=self.owner,
                        variant=label,
                    )
                )
        except FedMosaicError:
            for run_id in created:
                self.store.delete_run(run_id)
            raise
        for run_id, (_, _, member) in zip(created, members, strict=True):
            self._enqueue(RunHandle(run_id, member, resume=False))
        return group_id, created

    def resume(self, run_id: str) -> None:
        """Continue an interrupted, cancelled or failed run from its newest checkpoint (from
        round 1 when it has none), under the same id.

        :raises RunStateError: the run finished, or is queued/running (here or elsewhere).
        """
        self._check_open()
        with self._lock:
            if run_id in self._handles:
                raise RunStateError(f"run {run_id} is already {self.store.get_run(run_id)['status']} here")
        row = self.store.get_run(run_id)
        if row["status"] in ACTIVE:
            self.store.reap(self.stale_after_s)
            row = self.store.get_run(run_id)
        status = row["status"]
        if status in ACTIVE:
            raise RunStateError(
                f"run {run_id} is {status} in another process; cancel it there "
                f"(python -m engine cancel {run_id}) or wait for it"
            )
        if status not in RESUMABLE:
            raise RunStateError(
                f"run {run_id} already finished all its {row['rounds']} rounds; fork it to run a variation"
            )
        config = parse(row["config"])
        self.store.check_writable()
        if not self.store.claim(run_id, self.owner):
            raise RunStateError(f"run {run_id} was just resumed by another process")
        self._enqueue(RunHandle(run_id, config, resume=True))

    def fork(self, run_id: str, changes: Mapping[str, Any] | None = None) -> ExperimentConfig:
        """A new config from run ``run_id``'s with ``changes`` deep-merged in (nested dicts merge;
        lists and values replace; a strategy, partition or model of another ``name``/``method``/
        ``arch`` replaces the old one whole). Validated, not launched: pass it to :meth:`submit`
        (with ``parent_id=run_id`` to record where it came from).

        :raises ConfigError: the merged config is invalid.
        """
        base = self.store.get_run(run_id)["config"]
        config = parse(deep_merge(base, dict(changes or {})))
        self._validate(config)
        return config
