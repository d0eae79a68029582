"""What an exported Flower app runs (its generated files are thin and call this module).

A site (a Flower SuperNode) reads its own table (CSV, .xlsx, Parquet) with the experiment's schema
(:mod:`engine.artifacts.schema`), splits it (its split column, else a seeded random test
fraction), prepares it with its preprocessing (shipped with a run's export; fitted on its own
training rows otherwise), and trains with FedMosaic's own client turn
(:func:`engine.core.client.run_client`: the strategy's ``receive``, ``local_update``, ``local_loss`` and
``payload`` hooks, the same seeded batches as the simulation). Its model and strategy state persist
between rounds in the node's ``context.state``.

On the server (:mod:`engine.interop.flower_server`), strategies that map onto Flower's (FedAvg,
FedProx, FedAvgM, FedAdam, FedYogi) use Flower's own classes; the others run as
:class:`MosaicStrategy`, a Flower strategy whose ``configure_*``/``aggregate_*`` call the FedMosaic
strategy's ``configure``, ``aggregate`` and ``after_aggregate`` (so each site can receive a
different message: a group's body, the global prototypes). A first query round asks every node which
site it is and how many rows it holds. Clients evaluate what they would use next (``eval_state`` and
``predict`` with the message they would receive) on their local test rows; the server averages the
figures weighted by test rows.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

EXPERIMENT = "experiment.json"
STATE_MODEL, STATE_EXTRA = "fedmosaic.model", "fedmosaic.extra"
SEP = "/"


# ---- plain values <-> Flower records -------------------------------------------------------------
def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Tensor]:
    """A nested dict of tensors (and numbers) as one flat dict of tensors, keys joined by ``/``."""
    out: dict[str, Tensor] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, name + SEP))
        elif isinstance(value, Tensor):
            out[name] = value.detach().cpu().contiguous()
        elif isinstance(value, (int, float, bool)):
            out[name] = torch.tensor(value)
    return out


def unflatten(flat: dict[str, Tensor]) -> dict[str, Any]:
    """Inverse of :func:`flatten`."""
    out: dict[str, Any] = {}
    for key, value in flat.items():
        node = out
        parts = key.split(SEP)
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return out


def to_record(tree: dict[str, Any]) -> Any:
    from flwr.app import ArrayRecord

    flat = flatten(tree)
    return ArrayRecord(flat) if flat else ArrayRecord()


def from_record(record: Any) -> dict[str, Any]:
    if record is None or len(record) == 0:
        return {}
    return unflatten(dict(record.to_torch_state_dict()))


# ---- the experiment ------------------------------------------------------------------------------------
@dataclass
class Experiment:
    """``experiment.json`` beside the app's code: the FedMosaic config, the data schema and how
    the export maps the strategy."""

    folder: Path
    spec: dict[str, Any]

    @property
    def config(self) -> Any:
        from engine.config import parse_config

        return parse_config(self.spec["config"])

    @property
    def roster(self) -> list[Any]:
        return self.config.roster()

    def factory(self) -> Any:
        from engine.models import InputSpec, ModelFactory

        inp = self.spec["input"]
        return ModelFactory(
            InputSpec(inp["kind"], tuple(inp["shape"])),
            int(self.spec["rep_dim"]),
            int(self.spec["n_outputs"]),
        )

    def strategy_cls(self) -> Any:
        from engine.strategies import STRATEGIES

        return STRATEGIES.get(self.config.strategy.name)


def load_experiment(folder: str | Path) -> Experiment:
    folder = Path(folder)
    return Experiment(folder, json.loads((folder / EXPERIMENT).read_text(encoding="utf-8")))


def client_info(exp: Experiment, site: int, n_train: int = 0, n_test: int = 0) -> Any:
    from engine.types import ClientInfo

    spec = exp.roster[site]
    return ClientInfo(site, spec.name, spec, n_train, n_test)


def initial_model(exp: Experiment, site: int) -> dict[str, Tensor]:
    """Site ``site``'s initial weights, drawn as the simulation draws them
    (:func:`engine.core.seeding.init_path`)."""
    from engine.core.seeding import init_path, seeded
    from engine.core.state import detach

    with seeded(exp.config.seed, *init_path(exp.config.init, site, exp.roster[site].model_key)):
        model = exp.factory()(exp.roster[site].model)
    return detach(model.state_dict())


# ---- a site's data -----------------------------------------------------------------------------------
def site_of(context: Any) -> int:
    return int(context.node_config.get("partition-id", context.node_config.get("site", 0)))


def data_path(exp: Experiment, context: Any) -> Path:
    """The site's table: ``data-path`` in the node's config (a real deployment), else
    ``<data-dir>/site-<n>.csv`` (or ``.xlsx``, ``.parquet``: the simulation; ``data-dir``
    relative to the app)."""
    given = context.node_config.get("data-path")
    if given:
        return Path(str(given))
    folder = Path(str(context.run_config.get("data-dir", "data")))
    if not folder.is_absolute():
        folder = exp.folder.parent / folder
    site = site_of(context)
    for suffix in (".csv", ".xlsx", ".parquet"):
        if (folder / f"site-{site}{suffix}").is_file():
            return folder / f"site-{site}{suffix}"
    return folder / f"site-{site}.csv"


def site_data(exp: Experiment, path: Path, site: int) -> Any:
    """The site's train and test splits, prepared as the experiment prepares them."""
    from safetensors.torch import load_file

    from engine.artifacts.encode import encode_table
    from engine.data.federation import ClientData, Split
    from engine.data.preprocess import Affine, fit
    from engine.data.stats import Site, aggregate, feature_view
    from engine.data.tables.reading import read_table
    from engine.errors import DataError

    spec = exp.spec
    table = read_table(path).frame
    split_col = spec.get("split_column") or "split"
    if split_col in table.columns:
        role = table[split_col].astype(str).str.strip().str.lower().to_numpy()
        table = table.drop(columns=[split_col])
    else:
        rng = np.random.default_rng([int(exp.config.seed), site])
        role = np.where(rng.random(len(table)) < float(spec.get("test_fraction", 0.2)), "test", "train")
    target = spec["target"]
    encoded = encode_table(
        spec["schema"],
        table,
        list(spec.get("classes", [])),
        spec["task"],
        (float(target["mean"]), float(target["std"])),
    )
    if encoded.y is None:
        raise DataError(
            f"{path.name}: the target column '{spec['schema'].get('target')}' is missing; each site's "
            f"table needs it to train"
        )
    train, test = role == "train", role == "test"
    x, y = encoded.x, encoded.y
    shipped = exp.folder / "preprocessing" / f"site-{site}.safetensors"
    if shipped.is_file():
        pre = load_file(str(shipped))
        transform = Affine(pre.get("center"), pre.get("scale"), pre.get("fill"), pre.get("keep"))
    else:
        kind = spec["input"]["kind"]
        stats = aggregate(
            [Site(feature_view(x[torch.as_tensor(train)], kind))],
            None,
            impute=torch.isnan(feature_view(x, kind)).any(0),
            quantiles=(0.25, 0.5, 0.75),
        )
        transform = fit(exp.roster[site].preprocessing, stats, kind)
    tr, te = torch.as_tensor(np.flatnonzero(train)), torch.as_tensor(np.flatnonzero(test))
    return ClientData(Split(transform(x[tr]), y[tr]), Split(transform(x[te]), y[te]), transform)


# ---- the client side -----------------------------------------------------------------------------------
def _state(context: Any, exp: Experiment, site: int) -> dict[str, Any]:
    stored = context.state.get(STATE_MODEL) if hasattr(context.state, "get") else None
    if stored is None:
        return {"model": initial_model(exp, site), "extra": {}}
    return {"model": dict(stored.to_torch_state_dict()), "extra": from_record(context.state.get(STATE_EXTRA))}


def _save(context: Any, state: dict[str, Any]) -> None:
    from flwr.app import ArrayRecord

    context.state[STATE_MODEL] = ArrayRecord(dict(state["model"]))
    context.state[STATE_EXTRA] = to_record(state.get("extra", {}))


_CACHE: dict[tuple[str, int], Any] = {}


def _site(exp: Experiment, context: Any) -> tuple[int, Any]:
    site = site_of(context)
    path = data_path(exp, context)
    key = (str(path), site)
    if key not in _CACHE:
        _CACHE[key] = site_data(exp, path, site)
    return site, _CACHE[key]


def server_strategy(exp: Experiment, server: Any = None) -> Any:
    cls = exp.strategy_cls()
    return cls(cls.Params(**exp.config.strategy.params()), server)


def _client_strategy(exp: Experiment, data: Any, site: int) -> Any:
    """The FedMosaic strategy as a client uses it: its server side is what the client knows."""
    from engine.types import Server

    cfg = exp.config
    info = client_info(exp, site, len(data.train), len(data.test))
    inp = exp.factory().input_spec
    server = Server(
        clients=[info],
        input_spec=inp,
        task=exp.spec["task"],
        n_outputs=int(exp.spec["n_outputs"]),
        rep_dim=cfg.rep_dim,
        seed=cfg.seed,
        device=torch.device("cpu"),
        public=None,
        initial_states=lambda c: initial_model(exp, c.id),
        client_state=lambda c: {},
        build=exp.factory(),
    )
    return server_strategy(exp, server), info


def train(exp: Experiment, message: Any, context: Any) -> Any:
    """A training turn: FedMosaic's client turn on the site's data with the message received."""
    from flwr.app import ConfigRecord, Message, MetricRecord, RecordDict

    from engine.core.client import ClientEnv, ClientJob, run_client

    site, data = _site(exp, context)
    strategy, info = _client_strategy(exp, data, site)
    config = message.content.get("config") or ConfigRecord()
    rnd = int(config.get("server-round", 1))
    strategy.server.round = rnd
    received = from_record(message.content.get("arrays"))
    state = _state(context, exp, site)
    job = ClientJob(info, rnd, state, received, data, None, torch.device("cpu"))
    result = run_client(job, ClientEnv(strategy, exp.spec["task"], exp.config.seed, exp.factory()))
    _save(context, result.state)
    metrics = {
        "num-examples": len(data.train),
        "site": site,
        **{k: float(v) for k, v in result.metrics.items() if k in ("train_loss", "steps")},
    }
    content = RecordDict(
        {
            "arrays": to_record(result.payload),
            "metrics": MetricRecord(metrics),
            "config": ConfigRecord({"site": site}),
        }
    )
    return Message(content=content, reply_to=message)


def evaluate(exp: Experiment, message: Any, context: Any) -> Any:
    """Local test figures of what the site would use next (``eval_state`` with the message it
    would receive; ``predict`` with the server state the message carries)."""
    from flwr.app import Message, MetricRecord, RecordDict

    from engine.core.scores import scores

    site, data = _site(exp, context)
    strategy, info = _client_strategy(exp, data, site)
    received = from_record(message.content.get("arrays"))
    strategy.state.update(received)  # a class-table message is the server state predict reads
    strategy.configure = lambda client: received  # noqa: ARG005 - what it would receive next
    state = _state(context, exp, site)
    model = exp.factory()(info.spec.model)
    model.load_state_dict(strategy.eval_state(info, state))
    model.eval()
    with torch.no_grad():
        out = strategy.predict(info, model, state, data.test.x)
    figures = scores(exp.spec["task"], out, data.test.y, float(exp.spec["target"]["std"]))
    figures = {k: float(v) for k, v in figures.items() if np.isfinite(v)}
    return Message(
        content=RecordDict(
            {"metrics": MetricRecord({"num-examples": len(data.test), "site": site, **figures})}
        ),
        reply_to=message,
    )


def query(exp: Experiment, message: Any, context: Any) -> Any:
    """Which site this node is and how many rows it holds."""
    from flwr.app import Message, MetricRecord, RecordDict

    site, data = _site(exp, context)
    return Message(
        content=RecordDict(
            {"metrics": MetricRecord({"site": site, "n-train": len(data.train), "n-test": len(data.test)})}
        ),
        reply_to=message,
    )
