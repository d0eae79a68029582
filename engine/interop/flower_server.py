"""The server side of an exported Flower app (its ``server_app.py`` calls :func:`serve`):
strategies that map onto Flower's (FedAvg, FedProx, FedAvgM, FedAdam, FedYogi) use Flower's own
classes; the others run as :class:`MosaicStrategy`, a Flower strategy whose ``configure_*`` /
``aggregate_*`` call the FedMosaic strategy's ``configure``, ``aggregate`` and ``after_aggregate``
(so each site can receive a different message). The sites' side is
:mod:`engine.interop.flower_runtime`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from flwr.serverapp.strategy import Strategy as FlowerStrategy

from engine.interop.flower_runtime import (
    Experiment,
    client_info,
    from_record,
    initial_model,
    server_strategy,
    to_record,
)


def weighted_figures(replies: list[Any]) -> dict[str, float]:
    """Figures averaged over replies weighted by ``num-examples`` (Flower's rule)."""
    total: dict[str, float] = {}
    weight = 0.0
    for reply in replies:
        if not reply.has_content():
            continue
        m = reply.content["metrics"]
        n = float(m["num-examples"])
        weight += n
        for k, v in m.items():
            if k not in ("num-examples", "site"):
                total[k] = total.get(k, 0.0) + n * float(v)
    return {k: v / weight for k, v in total.items()} if weight else {}


class MosaicStrategy(FlowerStrategy):
    """A FedMosaic strategy as a Flower strategy (see the module docstring): Flower's round loop
    (``start``) calls ``configure_*``/``aggregate_*``, which call the FedMosaic strategy's
    ``configure`` per site and its ``aggregate`` and ``after_aggregate``. The server state lives in
    the FedMosaic strategy, so the ``arrays`` Flower passes along stay empty. Call :meth:`connect`
    first."""

    def __init__(self, exp: Experiment) -> None:
        self.exp = exp
        self.sites: dict[int, Any] = {}  # node id -> ClientInfo
        self.strategy: Any = None

    def summary(self) -> None:
        from logging import INFO

        from flwr.supercore import log

        log(INFO, "\tFedMosaic strategy %s on %d sites", self.exp.config.strategy.name, len(self.sites))

    def _messages(self, kind: str, rnd: int, body: Any) -> list[Any]:
        from flwr.app import ConfigRecord, Message, RecordDict

        out = []
        for node, info in self.sites.items():
            content = RecordDict({"config": ConfigRecord({"server-round": rnd})})
            if body is not None:
                content["arrays"] = to_record(body(info))
            out.append(Message(content=content, dst_node_id=node, message_type=kind))
        return out

    def connect(self, grid: Any, n_sites: int, timeout: float) -> None:
        """Learn which node is which site (a query round), then set up the FedMosaic strategy."""
        import time

        from flwr.app import MessageType

        from engine.types import Server

        deadline = time.time() + timeout
        nodes = list(grid.get_node_ids())
        while len(nodes) < n_sites and time.time() < deadline:
            time.sleep(0.5)
            nodes = list(grid.get_node_ids())
        self.sites = {n: None for n in nodes}
        replies = grid.send_and_receive(self._messages(MessageType.QUERY, 0, None), timeout=timeout)
        infos = {}
        for reply in replies:
            m = reply.content["metrics"]
            infos[reply.metadata.src_node_id] = client_info(
                self.exp, int(m["site"]), int(m["n-train"]), int(m["n-test"])
            )
        self.sites = dict(sorted(infos.items(), key=lambda kv: kv[1].id))
        cfg = self.exp.config
        clients = sorted(infos.values(), key=lambda c: c.id)
        server = Server(
            clients=clients,
            input_spec=self.exp.factory().input_spec,
            task=self.exp.spec["task"],
            n_outputs=int(self.exp.spec["n_outputs"]),
            rep_dim=cfg.rep_dim,
            seed=cfg.seed,
            device=torch.device("cpu"),
            public=None,
            initial_states=lambda c: initial_model(self.exp, c.id),
            client_state=lambda c: {"model": initial_model(self.exp, c.id), "extra": {}},
            build=self.exp.factory(),
        )
        self.strategy = server_strategy(self.exp, server)
        self.strategy.init()

    def configure_train(self, server_round: int, arrays: Any, config: Any, grid: Any) -> list[Any]:
        from flwr.app import MessageType

        self.strategy.server.round = server_round
        return self._messages(MessageType.TRAIN, server_round, self.strategy.configure)

    def aggregate_train(self, server_round: int, replies: Any) -> tuple[Any, Any]:
        from flwr.app import MetricRecord

        from engine.types import ClientResult

        by_site = {info.id: info for info in self.sites.values()}
        results = []
        for reply in replies:
            if not reply.has_content():
                continue
            m = reply.content["metrics"]
            results.append(
                ClientResult(
                    by_site[int(m["site"])],
                    from_record(reply.content.get("arrays")),
                    int(m["num-examples"]),
                    {},
                    {k: float(v) for k, v in m.items()},
                )
            )
        results.sort(key=lambda r: r.client.id)
        self.strategy.aggregate(results)
        self.strategy.after_aggregate()
        losses = [
            (r.n_samples, r.metrics.get("train_loss"))
            for r in results
            if r.metrics.get("train_loss") is not None
        ]
        total = sum(n for n, _ in losses)
        return None, MetricRecord({"train_loss": sum(n * v for n, v in losses) / total} if total else {})

    def configure_evaluate(self, server_round: int, arrays: Any, config: Any, grid: Any) -> list[Any]:
        from flwr.app import MessageType

        return self._messages(MessageType.EVALUATE, server_round, self.strategy.configure)

    def aggregate_evaluate(self, server_round: int, replies: Any) -> Any:
        from flwr.app import MetricRecord

        return MetricRecord(weighted_figures(list(replies)))


def native_strategy(exp: Experiment, n_sites: int) -> Any:
    """Flower's own strategy for the FedMosaic strategies that map onto one."""
    import flwr.serverapp.strategy as fs

    name = exp.config.strategy.name
    p = exp.config.strategy.params()
    common = {
        "fraction_train": float(exp.config.fraction),
        "fraction_evaluate": 1.0,
        "min_train_nodes": max(1, round(exp.config.fraction * n_sites)),
        "min_evaluate_nodes": n_sites,
        "min_available_nodes": n_sites,
    }
    if name == "fedavg":
        return fs.FedAvg(**common)
    if name == "fedprox":
        return fs.FedProx(proximal_mu=float(p.get("mu", 0.01)), **common)
    if name == "fedavgm":
        return fs.FedAvgM(
            server_learning_rate=float(p.get("server_lr", 1.0)),
            server_momentum=float(p.get("momentum", 0.9)),
            **common,
        )
    cls = {"fedadam": fs.FedAdam, "fedyogi": fs.FedYogi}[name]
    return cls(
        eta=float(p.get("server_lr", 0.03)),
        beta_1=float(p.get("beta1", 0.9)),
        beta_2=float(p.get("beta2", 0.99)),
        tau=float(p.get("tau", 1e-3)),
        **common,
    )


def serve(exp: Experiment, grid: Any, context: Any) -> dict[str, Any]:
    """The ServerApp's main: run the experiment's rounds and write ``results.json`` to the run
    config's ``results-dir`` (relative to the app)."""
    from flwr.app import ArrayRecord, ConfigRecord

    rounds = int(context.run_config.get("num-server-rounds", exp.config.rounds))
    n_sites = len(exp.roster)
    timeout = float(context.run_config.get("timeout", 3600))
    if exp.spec["mode"] == "native":
        strategy = native_strategy(exp, n_sites)
        result = strategy.start(
            grid=grid,
            initial_arrays=ArrayRecord(initial_model(exp, 0)),
            num_rounds=rounds,
            timeout=timeout,
            train_config=ConfigRecord({}),
        )
        history = {
            int(r): {k: float(v) for k, v in m.items() if k != "site"}
            for r, m in result.evaluate_metrics_clientapp.items()
        }
    else:
        bridge = MosaicStrategy(exp)
        bridge.connect(grid, n_sites, timeout)
        result = bridge.start(grid=grid, initial_arrays=ArrayRecord(), num_rounds=rounds, timeout=timeout)
        history = {
            int(r): {k: float(v) for k, v in m.items()} for r, m in result.evaluate_metrics_clientapp.items()
        }
    out = {
        "strategy": exp.config.strategy.name,
        "mode": exp.spec["mode"],
        "rounds": rounds,
        "local_test": {str(k): v for k, v in history.items()},
    }
    folder = Path(str(context.run_config.get("results-dir", "results")))
    if not folder.is_absolute():
        folder = exp.folder.parent / folder
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "results.json").write_text(json.dumps(out, indent=2), encoding="utf-8")
    return out
