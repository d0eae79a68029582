"""Setting a run up (the :class:`engine.core.simulation.Simulation` methods that build it before
round 1): the federation, the clients and their devices, the strategy and its server, the
executor and the run's thread count, the virtual clock, privacy and robustness, the evaluation
plan, and the roster rows recorded with the run."""

from __future__ import annotations

import json
from typing import Any

import torch

from engine import health
from engine.core.client import ClientEnv
from engine.core.evaluation import stratified_rows
from engine.core.primary import Primary, choose_primary
from engine.core.seeding import init_path, numpy_rng, seeded
from engine.core.state import detach
from engine.data import Federation, label_histograms
from engine.data import build as build_federation
from engine.errors import ConfigError
from engine.executors import RunPlan, make_executor
from engine.hardware import devices
from engine.hardware.clock import VirtualClock
from engine.models import FedModel, ModelFactory, count_params, flops_per_sample
from engine.robustness.adversaries import Adversaries
from engine.robustness.combine import make_combiner
from engine.strategies import STRATEGIES, Strategy
from engine.types import ClientInfo, Server


class SetUp:
    """Everything a run builds before its first round."""

    def setup(self) -> None:
        """Build the federation, the clients' initial models, the strategy and the executor."""
        cfg = self.config
        arch_cache: dict[str, tuple[int, int, bool]] = {}
        self.federation: Federation = build_federation(
            cfg.data,
            [c.preprocessing for c in self.roster],
            [c.data_share for c in self.roster],
            cfg.seed,
            self.root,
        )
        fed = self.federation
        self.task = fed.task
        self.clients = [
            ClientInfo(i, spec.name, spec, len(d.train), len(d.test))
            for i, (spec, d) in enumerate(zip(self.roster, fed.clients, strict=True))
        ]
        self.devices = {c.id: devices.resolve(c.spec.device) for c in self.clients}
        self.states: dict[int, dict[str, Any]] = {}
        self.flops: dict[int, int] = {}
        self.n_params: dict[int, int] = {}
        for c in self.clients:
            with seeded(cfg.seed, *init_path(cfg.init, c.id, c.arch_key)):
                model = self.build(c.spec.model)
            self.states[c.id] = {"model": detach(model.state_dict()), "extra": {}}
            key = c.arch_key
            if key not in arch_cache:
                arch_cache[key] = (
                    count_params(model),
                    flops_per_sample(model, fed.input_spec),
                    any(isinstance(m, torch.nn.RNNBase) for m in model.modules()),
                )
            self.n_params[c.id], self.flops[c.id], _ = arch_cache[key]
        self.initial = {cid: s["model"] for cid, s in self.states.items()}
        sample = cfg.global_sample
        self.global_rows = (
            None
            if sample is None
            else stratified_rows(fed.global_test.y, sample, numpy_rng(cfg.seed, "global-sample"), self.task)
        )
        """Rows of the global test set scored between full scorings (``None``: all of them)."""
        self._scored_rows = len(fed.global_test)
        """Rows of the global test set the latest evaluation scored (the whole set or its sample)."""
        self.server_device = next(iter(self.devices.values()), torch.device("cpu"))
        self.combiner = make_combiner(cfg.defence, log=lambda message: self._log(message, "warning"))
        self.server = Server(
            clients=self.clients,
            input_spec=fed.input_spec,
            task=self.task,
            n_outputs=fed.n_outputs,
            rep_dim=cfg.rep_dim,
            seed=cfg.seed,
            device=self.server_device,
            public=fed.public,
            initial_states=lambda c: self.initial[c.id],
            client_state=lambda c: self.states[c.id],
            build=self._server_build,
            log=self._log,
            pooled_train=fed.pooled_train,
            reference=fed.reference,
            combine=self.combiner,
        )
        strategy_cls = STRATEGIES.get(cfg.strategy.name)
        self.strategy: Strategy = strategy_cls(strategy_cls.Params(**cfg.strategy.params()), self.server)
        self.adversaries = Adversaries(self.clients, fed, self.strategy, cfg.seed, self._log)
        self.adversaries.poison()  # compromised clients train on their poisoned data from round 1
        self.strategy.init()
        self.clock = VirtualClock(
            cfg, self.clients, self.flops, param_bytes={cid: 4 * n for cid, n in self.n_params.items()}
        )
        self.participated: set[int] = set()
        self.events: list[tuple[str, str]] = []
        from engine.privacy.ledger import ClientLedger

        self.privacy = ClientLedger(self.clients, cfg.rounds, self._log)  # DP-SGD accounting
        from engine.privacy.server import PrivateAggregation

        self.private_agg = PrivateAggregation(cfg, self.clients, self.strategy, self.clock.tiers, self._log)
        self.executor = make_executor(cfg.executor, cfg.executor_options)
        self.env = ClientEnv(self.strategy, self.task, cfg.seed, self.build, self.cancel, self._log)
        plan = RunPlan(
            self.strategy,
            self.clients,
            {c.id: float(self.flops[c.id] * c.spec.batch_size) for c in self.clients},
            self.share,
            self._log,
            frozenset(c.id for c in self.clients if arch_cache[c.arch_key][2]),
        )
        self.threads = self.executor.prepare(plan)
        try:
            self.primary: Primary = choose_primary(
                cfg.primary_metric,
                self.task,
                label_histograms(fed).tolist() if self.task == "classification" else None,
                [c.name for c in self.clients],
            )
        except ValueError as exc:
            raise ConfigError(f"primary_metric: {exc}") from None
        self.best: dict[int, dict[str, Any]] = {}
        """Per client, what it keeps from its best validation round: ``round``, ``val`` (its
        validation figures), ``scores`` (its ``local_*``/``global_*`` test figures then),
        ``model`` (its evaluation weights then: what a deployment would take) and ``extra`` (its
        strategy state then). Checkpointed with the run."""
        self.server_best: dict[str, dict[str, Any]] = {}
        """The same per server-side model label (``round``, ``val``, ``scores``, ``model``)."""
        self._references = self._reference_figures()
        self._references_written: set[int] = set()
        self.health = health.Monitor(
            self.task,
            health.chance_accuracy(fed.global_test.y.tolist()) if self.task == "classification" else 0.0,
            cfg.strategy.name,
            strategy_cls.pitfalls,
        )

    @property
    def build(self) -> ModelFactory:
        """Builds a fresh model for a spec in this federation (initialisation uses the global RNG)."""
        fed = self.federation
        return ModelFactory(fed.input_spec, self.config.rep_dim, fed.n_outputs)

    def _server_build(self, spec: dict[str, Any]) -> FedModel:
        with seeded(self.config.seed, "server-build", json.dumps(spec, sort_keys=True), self.server.round):
            return self.build(spec).to(self.server_device)

    def client_rows(self) -> list[dict[str, Any]]:
        """Roster rows for the ``clients`` table."""
        hist = label_histograms(self.federation)
        return [
            {
                "client_id": c.id,
                "name": c.name,
                "arch": c.arch,
                "model": c.spec.model,
                "n_params": self.n_params[c.id],
                "flops": self.flops[c.id],
                "n_train": c.n_train,
                "n_test": c.n_test,
                "label_counts": hist[c.id].tolist(),
                "device": str(self.devices[c.id]),
                "tier": c.spec.tier,
                "join_round": c.spec.join_round,
                "preprocessing": c.spec.preprocessing,
                "optimizer": c.spec.optimizer,
                "lr": c.spec.lr,
                "epochs": c.spec.epochs,
                "batch_size": c.spec.batch_size,
            }
            for c in self.clients
        ]
