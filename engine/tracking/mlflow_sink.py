"""An MLflow sink for those who already track experiments there (``tracking: {"mlflow": {"uri":
...}}``; the ``mlflow`` extra: mlflow-skinny).

An observer of the round records (:class:`engine.tracking.observers.Observer`): the run's
parameters when its first round is recorded, every round's figures with ``step`` = the round, and
when the run ends its status, the kept models (:mod:`engine.artifacts.keep`) and the HTML report as
artifacts. One MLflow run per FedMosaic run, tagged ``fedmosaic.run_id``: a resumed run continues
the same MLflow run. It talks to MLflow through ``MlflowClient`` (no global active run), so runs in
parallel threads never mix. MLflow accepts letters, digits and ``_ - . / :`` in names: a figure
such as ``server_acc[mlp]`` is logged as ``server_acc.mlp``. A ``file:`` URI names MLflow's file
store, which MLflow 3 keeps behind ``MLFLOW_ALLOW_FILE_STORE``: the sink sets it for a file URI.
"""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.tracking.observers import Observer

if TYPE_CHECKING:
    from engine.core.simulation import RoundRecord, Simulation
    from engine.tracking.config import MlflowSpec

TAG = "fedmosaic.run_id"
STATUS = {"finished": "FINISHED", "cancelled": "KILLED", "interrupted": "KILLED", "failed": "FAILED"}
_BAD = re.compile(r"[^A-Za-z0-9_\-./: ]")
MAX_PARAM = 500


def metric_name(key: str) -> str:
    """A figure's key as an MLflow metric name (``server_acc[mlp]`` -> ``server_acc.mlp``)."""
    return _BAD.sub("_", key.replace("[", ".").replace("]", ""))[:250]


def params_of(sim: Simulation) -> dict[str, str]:
    """The run's settings as flat MLflow parameters (strategy and its parameters, data, roster)."""
    from engine.labels import dataset_label

    cfg = sim.config
    data = cfg.data.model_dump(mode="json")
    out: dict[str, Any] = {
        "fedmosaic.run_id": sim.run_id,
        "strategy": cfg.strategy.name,
        "seed": cfg.seed,
        "rounds": cfg.rounds,
        "fraction": cfg.fraction,
        "rep_dim": cfg.rep_dim,
        "executor": cfg.executor,
        "dataset": dataset_label(data),
        "partition": json.dumps(data.get("partition")),
        "n_clients": len(cfg.roster()),
        "architectures": ", ".join(sorted({c.arch for c in cfg.roster()})),
    }
    out.update({f"strategy.{k}": v for k, v in cfg.strategy.params().items()})
    for spec in cfg.clients:
        prefix = f"clients.{metric_name(spec.name)}"
        out[f"{prefix}.model"] = spec.model_key
        out.update(
            {
                f"{prefix}.{k}": getattr(spec, k)
                for k in ("count", "optimizer", "lr", "epochs", "batch_size", "preprocessing")
            }
        )
    return {metric_name(k): str(v)[:MAX_PARAM] for k, v in out.items()}


class MlflowSink(Observer):
    """Logs one run to MLflow (see the module docstring)."""

    name = "MLflow"

    def __init__(self, spec: MlflowSpec) -> None:
        self.spec = spec
        self.client: Any = None
        self.mlflow_run: str | None = None

    def _start(self, sim: Simulation) -> None:
        if self.mlflow_run is not None:
            return
        try:
            from mlflow.tracking import MlflowClient
        except ImportError:
            raise RuntimeError(
                "mlflow is not installed; install the mlflow extra: pip install 'fedmosaic[mlflow]'"
            ) from None
        if self.spec.uri.startswith("file:"):  # asked for by name: MLflow 3 keeps file stores behind a switch
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        self.client = MlflowClient(tracking_uri=self.spec.uri)
        experiment = self.client.get_experiment_by_name(self.spec.experiment)
        exp_id = (
            experiment.experiment_id if experiment else self.client.create_experiment(self.spec.experiment)
        )
        found = self.client.search_runs(
            [exp_id], filter_string=f"tags.`{TAG}` = '{sim.run_id}'", max_results=1
        )
        if found:
            self.mlflow_run = found[0].info.run_id
            self.client.update_run(self.mlflow_run, status="RUNNING")
            return
        run = self.client.create_run(exp_id, run_name=sim.config.name, tags={TAG: str(sim.run_id)})
        self.mlflow_run = run.info.run_id
        from mlflow.entities import Param

        params = [Param(k, v) for k, v in params_of(sim).items()]
        for i in range(0, len(params), 100):
            self.client.log_batch(self.mlflow_run, params=params[i : i + 100])

    def round(self, sim: Simulation, record: RoundRecord) -> None:
        self._start(sim)
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [
            Metric(metric_name(k), float(v), now, record.round)
            for k, v in record.metrics.items()
            if isinstance(v, (int, float)) and math.isfinite(v)
        ]
        for cid, figures in record.clients.items():
            name = metric_name(sim.clients[cid].name)
            metrics += [
                Metric(f"client/{name}/{metric_name(k)}", float(v), now, record.round)
                for k, v in figures.items()
                if k.startswith(("local_", "global_", "val_", "best_"))
                and isinstance(v, (int, float))
                and math.isfinite(v)
            ]
        for i in range(0, len(metrics), 1000):
            self.client.log_batch(self.mlflow_run, metrics=metrics[i : i + 1000])

    def ended(self, sim: Simulation, status: str, rnd: int) -> None:
        if sim.store is None or sim.run_id is None:
            return
        if self.mlflow_run is None and rnd < 1:
            return  # nothing was recorded
        self._start(sim)
        models = sim.store.models_dir / sim.run_id
        if self.spec.models and models.is_dir():
            self.client.log_artifacts(self.mlflow_run, str(models), "models")
        if self.spec.report and rnd >= 1:
            from engine.reporting.report import write_report

            with tempfile.TemporaryDirectory() as tmp:
                path = write_report(sim.store, [sim.run_id], Path(tmp) / "report.html")
                self.client.log_artifact(self.mlflow_run, str(path))
        self.client.set_terminated(self.mlflow_run, STATUS.get(status, "FINISHED"))
