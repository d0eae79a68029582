"""A hand-written federated loop in the reference libraries' protocol, to check FedMosaic's engine
against on the same split: what PFLlib and HtFLlib do for FedAvg, local training, LG-FedAvg, FedPer,
FedRep, FedProto, FD, FML and FedKD, written out plainly (no FedMosaic code but the data it is given).

Protocol (PFLlib's ``serverbase``/``clientbase``, read, not copied): every round the server sends
what it holds; each client is evaluated right after receiving it, on its own test split (the
round's personalised accuracy, sample-weighted over clients); each client then trains ``epochs``
epochs of SGD over shuffled mini-batches of its training split; the server combines what the
clients send, weighted by training samples. Round ``r``'s accuracy is measured after ``r`` rounds of
training and aggregation, as FedMosaic's round ``r`` is. Every client takes part every round. Models
are built by the caller; every client starts from one draw (``same_start``).

Models given to the loop have ``features(x)`` (the body: everything up to the representation the
output layer reads) and ``fc`` (the output layer), with ``forward(x) == fc(features(x))``.

What each algorithm does in the loop (the knowledge-sharing ones with FedMosaic's parameters and
choices, :data:`DEFAULTS`, so the loop and FedMosaic run one algorithm):

- **fedavg**: the server sends all weights, averages all weights.
- **local**: nothing is sent; each client trains alone.
- **lg_fedavg**: the server sends and averages the output layer only.
- **fedper**: the server sends and averages everything but the output layer.
- **fedrep**: as FedPer; each client first trains ``head_epochs`` of the output layer with the body
  frozen, then ``epochs`` of the body with the output layer frozen.
- **fedproto** (Tan et al. 2022): the server sends the global prototypes (per class, the mean
  representation) with the samples behind each. Loss: ``CE + lam * MSE(f(x), P_y)`` (per-sample mean
  over the representation, summed over samples whose class has a prototype, divided by the batch
  size). After training each client sends its prototypes (eval mode, over its whole training split)
  and class counts; the server merges them per class weighted by counts (PFLlib averages the
  clients' prototypes unweighted). The client's model is scored by its own output layer
  (``inference: head``, FedMosaic's default), or by the nearest global prototype (``prototype``, the
  paper's rule). Nothing is exchanged before round 2.
- **fd** (Jeong et al. 2018): as FedProto with per-class mean *logits* instead of prototypes. Loss:
  ``CE + kd_weight * T^2 * KL(softmax(g_y / T) || softmax(f(x) / T))`` over the samples whose class has
  a global row (summed, divided by the batch size). PFLlib uses the MSE between the logits instead.
- **fml** (Shen et al. 2020): each client trains its private model and a shared model side by side
  on the same mini-batches, one SGD over both: ``alpha * CE(p) + (1 - alpha) * KL_T(s || p)`` and
  ``beta * CE(s) + (1 - beta) * KL_T(p || s)`` (each model learns from the other's detached outputs).
  The server sends and averages the shared model only; the private model is scored.
- **fedkd** (Wu et al. 2022): as FML (private mentor, shared mentee) with per-sample adaptive
  mutual distillation: each model's loss is ``CE + (KL_T + hidden_weight * MSE(H, H_other)) /
  max(CE_mentor + CE_mentee, 0.1)`` per sample (``H`` the representations; the divisor detached),
  averaged over the batch. With ``svd_energy > 0`` each client's mentee update (trained minus
  received) is replaced by its truncated SVD per weight matrix (kernels flattened to ``out x rest``;
  the fewest singular values whose squared sum reaches that share of the total; biases, and
  matrices whose factors would not be smaller, stay exact); the server averages those updates and
  applies the truncated SVD of their average (what a client decodes from the factors it receives).
  The loop computes the truncated matrices themselves, not the bytes of the factors.

Omitted, because the loop runs every client every round on fixed splits: FedMosaic's handling of
clients that miss rounds (classes nobody reported keep their previous global row; a client that
missed a round receives FedKD's dense weights); regression; FedKD's transformer attention matching
(FedMosaic omits it as well).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

DEFAULTS: dict[str, dict[str, Any]] = {
    "fedproto": {"lam": 1.0, "inference": "head"},
    "fd": {"kd_weight": 1.0, "temperature": 1.0},
    "fml": {"alpha": 0.9, "beta": 0.5, "temperature": 3.0},
    "fedkd": {"temperature": 1.0, "adaptive": True, "hidden_weight": 1.0, "svd_energy": 0.0},
}
"""Each knowledge-sharing algorithm's parameters, by FedMosaic's names, at FedMosaic's defaults
(``bench.peers`` passes FedMosaic's current defaults explicitly, so a change there follows)."""
ALGORITHMS = ("fedavg", "local", "lg_fedavg", "fedper", "fedrep", *DEFAULTS)
PAIRED = ("fml", "fedkd")
"""Algorithms that train a shared model next to each client's private one."""
ADAPTIVE_FLOOR = 0.1


@dataclass
class ClientSplit:
    """One client's training and test tensors."""

    x_train: Tensor
    y_train: Tensor
    x_test: Tensor
    y_test: Tensor


@dataclass
class Outcome:
    """What :func:`federate` ends with: the personalised accuracy after each round, each client's
    (private) model and, for FML and FedKD, each client's shared model as it trained it last."""

    curve: list[float]
    models: list[nn.Module]
    shared: list[nn.Module] = field(default_factory=list)
    server: dict[str, Tensor] = field(default_factory=dict)
    """What the server holds at the end: the averaged weights (of the shared model for FML and
    FedKD), or FedProto's/FD's global ``table`` and its class ``counts``."""


class MLP(nn.Module):
    """The shared model FML and FedKD train by default in FedMosaic (``{"arch": "mlp", "hidden":
    64}``): the flattened input, ``depth - 1`` hidden ReLU layers of ``hidden`` units, a ReLU layer
    to the ``rep_dim`` representation, and the output layer."""

    def __init__(
        self, n_in: int, n_classes: int, hidden: int = 64, depth: int = 2, rep_dim: int = 512
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        width = n_in
        for _ in range(depth - 1):
            layers += [nn.Linear(width, hidden), nn.ReLU()]
            width = hidden
        self.body = nn.Sequential(*layers, nn.Linear(width, rep_dim), nn.ReLU())
        self.fc = nn.Linear(rep_dim, n_classes)

    def features(self, x: Tensor) -> Tensor:
        return self.body(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.features(x))


def shared_keys(model: nn.Module, algorithm: str) -> list[str]:
    """Parameter names of the client's model the server averages: all (fedavg), the output layer
    (lg_fedavg), all but the output layer (fedper, fedrep), none (local and the knowledge-sharing
    algorithms, whose clients never send their own weights)."""
    names = list(model.state_dict())
    head = names[-2:]  # the last Linear: weight and bias
    if algorithm == "fedavg":
        return names
    if algorithm == "lg_fedavg":
        return head
    if algorithm in ("fedper", "fedrep"):
        return names[:-2]
    if algorithm in ALGORITHMS:
        return []
    raise ValueError(f"unknown algorithm '{algorithm}': one of {', '.join(ALGORITHMS)}")


# ---- the losses ------------------------------------------------------------------------------------------
def kl(student: Tensor, teacher: Tensor, t: float) -> Tensor:
    """Per sample ``t^2 * KL(softmax(teacher / t) || softmax(student / t))``; the teacher gets no
    gradient."""
    log_teacher = F.log_softmax(teacher.detach() / t, dim=1)
    return (log_teacher.exp() * (log_teacher - F.log_softmax(student / t, dim=1))).sum(1) * t * t


def proto_loss(
    model: nn.Module, x: Tensor, y: Tensor, protos: Tensor | None, counts: Tensor | None, lam: float
) -> Tensor:
    """FedProto: cross-entropy plus ``lam`` times the squared distance (mean over the
    representation) of each sample's representation to its class's global prototype."""
    z = model.features(x)
    loss = F.cross_entropy(model.fc(z), y)
    if protos is None or counts is None:
        return loss
    known = counts[y] > 0
    return loss + lam * (z[known] - protos[y[known]]).pow(2).mean(1).sum() / len(y)


def fd_loss(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    logits: Tensor | None,
    counts: Tensor | None,
    weight: float,
    t: float,
) -> Tensor:
    """FD: cross-entropy plus ``weight`` times the distillation towards each sample's class's global
    mean logits."""
    out = model(x)
    loss = F.cross_entropy(out, y)
    if logits is None or counts is None:
        return loss
    known = counts[y] > 0
    return loss + weight * kl(out[known], logits[y[known]], t).sum() / len(y)


def fml_loss(
    private: nn.Module, shared: nn.Module, x: Tensor, y: Tensor, alpha: float, beta: float, t: float
) -> Tensor:
    """FML: both models' mutual-learning losses (each reaches only its own model)."""
    out_p, out_s = private(x), shared(x)
    loss_p = alpha * F.cross_entropy(out_p, y) + (1 - alpha) * kl(out_p, out_s, t).mean()
    loss_s = beta * F.cross_entropy(out_s, y) + (1 - beta) * kl(out_s, out_p, t).mean()
    return loss_p + loss_s


def fedkd_loss(
    mentor: nn.Module, mentee: nn.Module, x: Tensor, y: Tensor, t: float, adaptive: bool, hidden_weight: float
) -> Tensor:
    """FedKD: both models' task losses plus their mutual distillation (outputs and
    representations), each sample's distillation divided by the pair's task loss on it."""
    h_t, h_s = mentor.features(x), mentee.features(x)
    out_t, out_s = mentor.fc(h_t), mentee.fc(h_s)
    ce_t = F.cross_entropy(out_t, y, reduction="none")
    ce_s = F.cross_entropy(out_s, y, reduction="none")
    kd_t = kl(out_t, out_s, t) + hidden_weight * (h_t - h_s.detach()).pow(2).mean(1)
    kd_s = kl(out_s, out_t, t) + hidden_weight * (h_s - h_t.detach()).pow(2).mean(1)
    scale = 1 / (ce_t + ce_s).detach().clamp(min=ADAPTIVE_FLOOR) if adaptive else 1.0
    return (ce_t + ce_s + scale * (kd_t + kd_s)).mean()


# ---- what is exchanged -----------------------------------------------------------------------------------
@torch.no_grad()
def class_table(
    model: nn.Module, x: Tensor, y: Tensor, n_classes: int, prototypes: bool
) -> tuple[Tensor, Tensor]:
    """The per-class mean representation (``prototypes``) or mean logits of ``model`` over ``x``
    (eval mode), with the samples of each class: ``(n_classes, D)`` and ``(n_classes,)``."""
    model.eval()
    values = model.features(x) if prototypes else model(x)
    model.train()
    counts = torch.bincount(y, minlength=n_classes).float()
    sums = torch.zeros(n_classes, values.shape[1]).index_add_(0, y, values)
    return sums / counts.clamp(min=1).unsqueeze(1), counts


def merge_tables(tables: list[tuple[Tensor, Tensor]]) -> tuple[Tensor, Tensor]:
    """The clients' per-class rows merged per class, weighted by the samples behind each; a class
    nobody holds keeps count 0 (never used)."""
    counts = torch.stack([n for _, n in tables])
    total = counts.sum(0)
    weighted = sum(m * n.unsqueeze(1) for m, n in tables)
    return weighted / total.clamp(min=1).unsqueeze(1), total


def low_rank(delta: Tensor, energy: float) -> Tensor:
    """``delta`` (a weight matrix, a kernel flattened to ``out x rest``) cut to the fewest singular
    values whose squared sum reaches ``energy`` of the total; unchanged when it is a bias, when
    ``energy`` is 0 or when those factors would not be smaller than the matrix."""
    if energy <= 0 or delta.ndim < 2:
        return delta
    m = delta.reshape(delta.shape[0], -1)
    u, s, vh = torch.linalg.svd(m, full_matrices=False)
    share = torch.cumsum(s.pow(2), 0) / s.pow(2).sum().clamp(min=1e-30)
    k = min(int((share < energy - 1e-7).sum()) + 1, len(s))
    if k * (m.shape[0] + m.shape[1] + 1) >= m.numel():
        return delta
    return ((u[:, :k] * s[:k]) @ vh[:k]).reshape(delta.shape)


def weighted_mean(
    states: list[dict[str, Tensor]], weights: list[float], keys: list[str]
) -> dict[str, Tensor]:
    return {k: sum(s[k] * w for s, w in zip(states, weights, strict=True)) for k in keys}


# ---- the loop --------------------------------------------------------------------------------------------
def federate(
    algorithm: str,
    clients: list[ClientSplit],
    make_model: Callable[[], nn.Module],
    *,
    rounds: int,
    lr: float = 0.005,
    batch_size: int = 10,
    epochs: int = 1,
    seed: int = 0,
    same_start: bool = True,
    head_epochs: int = 1,
    make_shared: Callable[[], nn.Module] | None = None,
    params: Mapping[str, Any] | None = None,
) -> Outcome:
    """Run ``algorithm`` for ``rounds`` rounds (see the module's docstring).

    :param same_start: every client starts from one model, as the libraries do; ``False``: each
        client's model is initialised on its own (the server's start is still what it sends in
        round 1).
    :param head_epochs: FedRep's epochs of the output layer before the body's ``epochs``.
    :param make_shared: FML's and FedKD's shared model (one draw, sent to every client in round 1).
    :param params: the knowledge-sharing algorithm's parameters by FedMosaic's names; missing ones
        take :data:`DEFAULTS`.
    :raises ValueError: an unknown algorithm or parameter, or FML/FedKD without ``make_shared``."""
    shared_keys(nn.Linear(1, 1), algorithm)  # refuses an unknown algorithm
    p = dict(DEFAULTS.get(algorithm, {}))
    unknown = sorted(set(params or {}) - set(p))
    if unknown:
        raise ValueError(
            f"{algorithm} has no parameter {', '.join(unknown)}; it takes: {', '.join(p) or 'none'}"
        )
    p.update(params or {})
    if algorithm in PAIRED and make_shared is None:
        raise ValueError(f"{algorithm} trains a shared model next to each client's: pass make_shared")

    torch.manual_seed(seed)
    start = make_model()
    models = [copy.deepcopy(start) if same_start else make_model() for _ in clients]
    keys = shared_keys(start, algorithm)
    global_state = {k: v.clone() for k, v in start.state_dict().items() if k in keys}
    shared: list[nn.Module] = []
    global_shared: dict[str, Tensor] = {}
    if algorithm in PAIRED:
        shared_start = make_shared()
        global_shared = {k: v.clone() for k, v in shared_start.state_dict().items()}
        shared = [copy.deepcopy(shared_start) for _ in clients]
    n_classes = int(start.fc.out_features)
    table: Tensor | None = None  # FedProto's global prototypes, FD's global per-class logits
    counts: Tensor | None = None
    total = sum(len(c.y_train) for c in clients)
    weights = [len(c.y_train) / total for c in clients]
    gen = torch.Generator().manual_seed(seed)

    def sgd(
        trained: list[nn.Parameter], loss: Callable[[Tensor, Tensor], Tensor], c: ClientSplit, n: int
    ) -> None:
        opt = torch.optim.SGD(trained, lr=lr)
        for _ in range(n):
            order = torch.randperm(len(c.y_train), generator=gen)
            for i in range(0, len(order), batch_size):
                idx = order[i : i + batch_size]
                opt.zero_grad()
                loss(c.x_train[idx], c.y_train[idx]).backward()
                opt.step()

    def batch_loss(k: int) -> Callable[[Tensor, Tensor], Tensor]:
        """Client ``k``'s loss on one mini-batch (with this round's received table)."""
        model = models[k]
        if algorithm == "fedproto":
            return lambda x, y: proto_loss(model, x, y, table, counts, p["lam"])
        if algorithm == "fd":
            return lambda x, y: fd_loss(model, x, y, table, counts, p["kd_weight"], p["temperature"])
        if algorithm == "fml":
            return lambda x, y: fml_loss(model, shared[k], x, y, p["alpha"], p["beta"], p["temperature"])
        if algorithm == "fedkd":
            t, adaptive, hidden = p["temperature"], p["adaptive"], p["hidden_weight"]
            return lambda x, y: fedkd_loss(model, shared[k], x, y, t, adaptive, hidden)
        return lambda x, y: F.cross_entropy(model(x), y)

    curve = []
    for _ in range(rounds):
        for model in models:  # send
            model.load_state_dict(global_state, strict=False)
        for model in shared:
            model.load_state_dict(global_shared)
        tables = []
        for k, (model, c) in enumerate(zip(models, clients, strict=True)):  # train
            model.train()
            own = list(model.parameters())
            if algorithm == "fedrep":  # the output layer on the frozen body, then the body
                for trained, n_epochs in ((own[-2:], head_epochs), (own[:-2], epochs)):
                    for q in own:
                        q.requires_grad_(any(q is t for t in trained))
                    sgd(trained, batch_loss(k), c, n_epochs)
                for q in own:
                    q.requires_grad_(True)
            else:  # FML and FedKD: one SGD over both models (each loss reaches its own model only)
                sgd(own + (list(shared[k].parameters()) if shared else []), batch_loss(k), c, epochs)
            if algorithm in ("fedproto", "fd"):  # what the client sends: its table after training
                tables.append(class_table(model, c.x_train, c.y_train, n_classes, algorithm == "fedproto"))
        # aggregate, weighted by training samples
        if keys:
            global_state = weighted_mean([m.state_dict() for m in models], weights, keys)
            for model in models:
                model.load_state_dict(global_state, strict=False)
        if tables:
            table, counts = merge_tables(tables)
        if shared:
            states = [s.state_dict() for s in shared]
            if p.get("svd_energy", 0) > 0:  # FedKD's compressed updates, and the compressed average
                e = p["svd_energy"]
                deltas = [{k: low_rank(s[k] - v, e) for k, v in global_shared.items()} for s in states]
                avg = weighted_mean(deltas, weights, list(global_shared))
                global_shared = {k: v + low_rank(avg[k], e) for k, v in global_shared.items()}
            else:
                global_shared = weighted_mean(states, weights, list(global_shared))
        correct = n = 0
        with torch.no_grad():  # evaluate what each client holds after receiving
            for model, c in zip(models, clients, strict=True):
                model.eval()
                if algorithm == "fedproto" and p["inference"] == "prototype" and table is not None:
                    dist = torch.cdist(model.features(c.x_test), table).pow(2)
                    out = torch.where(counts.unsqueeze(0) > 0, -dist, torch.full_like(dist, -1e9))
                else:
                    out = model(c.x_test)
                correct += int((out.argmax(1) == c.y_test).sum())
                n += len(c.y_test)
        curve.append(correct / max(n, 1))
    server = global_shared or global_state
    if table is not None and counts is not None:
        server = {"table": table, "counts": counts}
    return Outcome(curve, models, shared, server)


def run(
    algorithm: str, clients: list[ClientSplit], make_model: Callable[[], nn.Module], **options: Any
) -> list[float]:
    """Personalised sample-weighted test accuracy after each round (``rounds`` values):
    :func:`federate`'s curve, with the same arguments."""
    return federate(algorithm, clients, make_model, **options).curve
