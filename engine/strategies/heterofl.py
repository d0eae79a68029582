"""HeteroFL — Diao, Ding & Tarokh, "HeteroFL: Computation and Communication Efficient Federated
Learning for Heterogeneous Clients", ICLR 2021 (arXiv:2010.01264).

Clients of one model family train models of different *widths* (the ``width`` knob: 1, 0.5,
0.25...), each a slice of one full-width global model that the server keeps (the widest client's
shape). Every round a client receives its slice of the global model: for every dimension whose size
differs, the leading indices. The server then averages each entry of the global model over the
clients whose slice covers it, weighted by their sample counts; entries nobody covered keep their
value. So the first channels of every layer are trained by everyone and the last ones only by the
wide clients.
With a defence (the config's ``defence``) each entry is combined by that rule over the clients
covering it, entries covered by the same clients together (``server.combine.masked_mean``).

Structured dimensions are sliced per block so that a slice is still the same kind of unit:

- LSTM/GRU weights stack their gates in rows (4 or 3 blocks of ``hidden`` rows): each gate block
  contributes its first rows. A bidirectional layer's inputs (and the projection after the last
  layer) are two blocks, forward and backward.
- Transformer query/key/value outputs and the attention output's inputs are one block per head:
  each head keeps its first dimensions (every client has the same number of heads).
- CNN and 1-D CNN flatten channel-major and the MLP has no structure: plain leading slices.

Omitted from the paper: static batch norm (no architecture here has batch norm) and the
"scaler" that rescales a narrow model's activations during training.

Clients must share everything but ``width``; a roster mixing architectures or other knobs is
refused by the compatibility check.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from engine.models import ARCHITECTURES
from engine.strategies.base import STRATEGIES, ClientInfo, ClientResult, Strategy

if TYPE_CHECKING:
    from engine.config import ClientSpec

Plan = dict[str, list[Tensor | None]]
"""Per parameter name, per dimension: the global indices a client's slice covers (``None``: all)."""

_RNN_WEIGHT = re.compile(r"^body\.rnn\.(weight|bias)_(ih|hh)_l(\d+)(_reverse)?$")
_ATTENTION_IN = re.compile(r"^body\.blocks\.\d+\.(q|k|v)\.(weight|bias)$")
_ATTENTION_OUT = re.compile(r"^body\.blocks\.\d+\.out\.weight$")


def blocks(model: dict[str, Any], key: str, dim: int) -> int:
    """Into how many equal blocks dimension ``dim`` of parameter ``key`` splits (1: none)."""
    arch = str(model.get("arch"))
    if arch in ("lstm", "gru"):
        directions = 2 if model.get("bidirectional") else 1
        m = _RNN_WEIGHT.match(key)
        if m and dim == 0:
            return int(getattr(ARCHITECTURES.get(arch), "gates", 1))
        if m and dim == 1 and m.group(1) == "weight" and m.group(2) == "ih" and int(m.group(3)) > 0:
            return directions
        if key == "body.proj.weight" and dim == 1:
            return directions
    if arch == "transformer":
        if (_ATTENTION_IN.match(key) and dim == 0) or (_ATTENTION_OUT.match(key) and dim == 1):
            return int(model.get("heads", 1))
    return 1


def leading(n_global: int, n_client: int, n_blocks: int = 1) -> Tensor:
    """Indices of the first ``n_client / n_blocks`` entries of each of ``n_blocks`` equal blocks of
    a dimension of size ``n_global``."""
    if n_global % n_blocks or n_client % n_blocks or n_client > n_global:
        raise ValueError(f"cannot slice {n_client} of {n_global} entries in {n_blocks} blocks")
    g, c = n_global // n_blocks, n_client // n_blocks
    return torch.cat([b * g + torch.arange(c) for b in range(n_blocks)])


def make_plan(
    model: dict[str, Any], global_shapes: dict[str, torch.Size], client_shapes: dict[str, torch.Size]
) -> Plan:
    """Where each of a client's tensors sits inside the global ones."""
    plan: Plan = {}
    for key, shape in client_shapes.items():
        full = global_shapes[key]
        if len(full) != len(shape):
            raise ValueError(f"{key}: global shape {tuple(full)} vs client shape {tuple(shape)}")
        plan[key] = [
            None if n == f else leading(f, n, blocks(model, key, d))
            for d, (f, n) in enumerate(zip(full, shape, strict=True))
        ]
    return plan


def take(tensor: Tensor, index: list[Tensor | None]) -> Tensor:
    """The slice of a global ``tensor`` that ``index`` describes (``tensor`` itself when whole)."""
    out = tensor
    for d, idx in enumerate(index):
        if idx is not None:
            out = out.index_select(d, idx.to(out.device))
    return out


def embed(part: Tensor, index: list[Tensor | None], shape: torch.Size) -> Tensor:
    """A zero tensor of the global ``shape`` with ``part`` written at ``index`` (inverse of
    :func:`take`)."""
    out = part
    for d, idx in enumerate(index):
        if idx is not None:
            grown = list(out.shape)
            grown[d] = shape[d]
            zeros = torch.zeros(grown, dtype=out.dtype, device=out.device)
            out = zeros.index_copy_(d, idx.to(out.device), out)
    return out


def aggregate_slices(
    old: dict[str, Tensor],
    parts: Sequence[dict[str, Tensor]],
    plans: Sequence[Plan],
    weights: Sequence[float],
) -> dict[str, Tensor]:
    """HeteroFL's aggregation: every global entry becomes the weighted mean of the clients'
    values for it, over the clients whose slice covers it; uncovered entries keep ``old``."""
    new: dict[str, Tensor] = {}
    for key, g in old.items():
        if not g.is_floating_point():
            new[key] = g
            continue
        total = torch.zeros(g.shape, dtype=torch.float64, device=g.device)
        weight = torch.zeros(g.shape, dtype=torch.float64, device=g.device)
        for part, plan, w in zip(parts, plans, weights, strict=True):
            if key not in part:
                continue
            value = part[key].to(device=g.device, dtype=torch.float64)
            total += embed(value * w, plan[key], g.shape)
            weight += embed(torch.full_like(value, float(w)), plan[key], g.shape)
        covered = weight > 0
        mean = torch.where(covered, total / weight.clamp_min(1e-300), g.to(torch.float64))
        new[key] = mean.to(g.dtype)
    return new


def family_key(model: dict[str, Any]) -> str:
    """The model spec without its width: clients of one HeteroFL family share it."""
    return json.dumps({k: v for k, v in model.items() if k != "width"}, sort_keys=True)


@STRATEGIES.register("heterofl")
class HeteroFL(Strategy):
    paper = (
        "Diao et al. 2021, HeteroFL: Computation and Communication Efficient Federated Learning for "
        "Heterogeneous Clients (ICLR)"
    )
    url = "https://arxiv.org/abs/2010.01264"
    family = "parameter sharing"
    description = (
        "Clients of one architecture at different widths (1, 0.5, 0.25...) train nested slices "
        "of one full-width global model; small devices send small slices."
    )
    same_architecture = False

    @classmethod
    def incompatibility(cls, roster: Sequence[ClientSpec], task: str, has_public: bool) -> str | None:
        """Also refuses rosters whose models differ in anything but ``width``."""
        why = super().incompatibility(roster, task, has_public)
        if why is not None:
            return why
        first = family_key(roster[0].model)
        for i, spec in enumerate(roster[1:], start=1):  # numbered from 0, as the roster shows them
            if family_key(spec.model) == first:
                continue
            a = roster[0]
            what, fix = f"use {a.arch} and {spec.arch}", ""
            if spec.arch == a.arch:
                keys = sorted(
                    k
                    for k in set(a.model) | set(spec.model)
                    if k != "width" and a.model.get(k) != spec.model.get(k)
                )
                what = "differ in " + ", ".join(
                    f"{k} ({a.model.get(k)} vs {spec.model.get(k)})" for k in keys
                )
                fix = (
                    f"; to make some {a.arch} clients smaller, give them the same {', '.join(keys)} "
                    f"and a smaller width instead"
                )
            return (
                f"clients 0 ({a.name}) and {i} ({spec.name}) {what}: heterofl needs one model family — "
                f"the same architecture and knobs, only width may differ (e.g. 1, 0.5, 0.25){fix}"
            )
        return None

    @classmethod
    def caveat(cls, roster: Sequence[ClientSpec], task: str, has_public: bool) -> str | None:
        widths = {float(spec.model.get("width", 1.0)) for spec in roster}
        if len(widths) == 1:
            return (
                f"every client has width {widths.pop():g}: heterofl is plain FedAvg here; give the "
                f"smaller devices width 0.5 or 0.25 to use it"
            )
        return None

    # ---- server ----------------------------------------------------------------------------------
    def init(self) -> None:
        """The global model is the widest client's initial model (first such client on ties)."""
        widest = max(self.server.clients, key=lambda c: float(c.spec.model.get("width", 1.0)))
        self.state["global"] = {"all": dict(self.server.initial_states(widest))}
        self.state["model"] = dict(widest.spec.model)

    def plan(self, client: ClientInfo) -> Plan:
        """Where ``client``'s tensors sit in the global model (computed once per model spec)."""
        plans: dict[str, Plan] = self.__dict__.setdefault("_plans", {})
        key = client.arch_key
        if key not in plans:
            g = self.state["global"]["all"]
            shapes = {k: v.shape for k, v in self.server.initial_states(client).items()}
            plans[key] = make_plan(client.spec.model, {k: v.shape for k, v in g.items()}, shapes)
        return plans[key]

    def configure(self, client: ClientInfo) -> dict[str, Any]:
        """The client's slice of the global model."""
        g = self.state["global"]["all"]
        return {k: take(g[k], index) for k, index in self.plan(client).items()}

    def aggregate(self, results: list[ClientResult]) -> None:
        """Count-normalised, sample-weighted mean of every global entry over the clients covering it."""
        if not results:
            return
        old = self.state["global"]["all"]
        parts, plans = [r.payload for r in results], [self.plan(r.client) for r in results]
        weights = [float(r.n_samples) for r in results]
        if self.server.combine.plain:
            new = aggregate_slices(old, parts, plans, weights)
        else:
            # a defence: each client's slice written into the full shape, entries grouped by who covers them
            full = [
                {k: embed(part[k], plan[k], old[k].shape) for k in old if k in part}
                for part, plan in zip(parts, plans, strict=True)
            ]
            masks = [
                {
                    k: embed(torch.ones_like(part[k]), plan[k], old[k].shape) > 0
                    if k in part
                    else torch.zeros(old[k].shape, dtype=torch.bool)
                    for k in old
                    if old[k].is_floating_point()
                }
                for part, plan in zip(parts, plans, strict=True)
            ]
            full = [
                {k: f.get(k, torch.zeros_like(old[k])) for k in old if old[k].is_floating_point()}
                for f in full
            ]
            new = self.server.combine.masked_mean(
                full, masks, weights, reference=old, who=[r.client.id for r in results]
            )
        self.state["global"]["all"] = self.server_update("all", old, new)

    def server_models(self) -> dict[str, dict[str, Tensor]]:
        """The full-width global model, labelled by its spec (evaluated as ``server_acc[arch]``)."""
        return {json.dumps(self.state["model"], sort_keys=True): self.state["global"]["all"]}
