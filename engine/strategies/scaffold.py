"""SCAFFOLD — Karimireddy et al., "SCAFFOLD: Stochastic Controlled Averaging for Federated
Learning", ICML 2020 (arXiv:1910.06378).

Client drift under skewed data is corrected with control variates: the server keeps ``c`` (an
estimate of the global gradient), each client keeps ``c_i`` (an estimate of its own). Every local
step follows ``g_i(y) - c_i + c`` instead of ``g_i(y)``; here that is done by adding
``<y, c - c_i>`` (constants) to the loss, whose gradient is exactly ``c - c_i``. After ``K`` local
steps with learning rate ``eta``:

- option II (``control="difference"``): ``c_i+ = c_i - c + (x - y_i) / (K * eta)``;
- option I  (``control="gradient"``):  ``c_i+ = grad f_i(x)``, one extra pass over the local data.

The client sends its model ``y_i`` and ``delta c_i = c_i+ - c_i`` (so the upload is twice the
model, and the download — model plus ``c`` — too: the engine counts both). The server sets
``x <- x + eta_g * (mean_S y_i - x)`` (sample-weighted mean, as FedAvg) and
``c <- c + (1 / N) * sum_S delta c_i``, i.e. ``|S| / N`` times the mean over the ``|S|`` clients that
reported, ``N`` the size of the whole federation.

Option II assumes plain SGD steps. With momentum ``m`` the steady-state step is ``eta / (1 - m)``,
which is used as the effective rate. Adam-type clients do not take gradient-proportional steps at
all, so under ``control="auto"`` (the default) they use option I and SGD clients option II.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from pydantic import Field
from torch import Tensor

from engine.strategies.base import STRATEGIES, ClientContext, ClientInfo, ClientResult
from engine.strategies.fedavg import FedAvg

PREFIX = "control."
"""Message keys ``control.<parameter name>`` carry control variates next to the model's keys."""


@STRATEGIES.register("scaffold")
class Scaffold(FedAvg):
    paper = "Karimireddy et al. 2020, SCAFFOLD: Stochastic Controlled Averaging for Federated Learning (ICML)"
    url = "https://arxiv.org/abs/1910.06378"
    family = "parameter sharing"
    description = (
        "Control variates correct each client's drift towards its own data; sends the model "
        "plus a correction of the same size both ways. Needs one architecture."
    )

    class Params(FedAvg.Params):
        server_lr: float = Field(
            1.0,
            gt=0,
            le=10,
            description="global step size eta_g on the averaged model change (1 = FedAvg's step)",
        )
        control: Literal["auto", "difference", "gradient"] = Field(
            "auto",
            description="how a client updates its control variate: 'difference' (option II: from "
            "its model change, cheap, assumes SGD), 'gradient' (option I: one extra pass "
            "over its data), 'auto' (II for SGD clients, I for Adam clients)",
        )

    # ---- server ----------------------------------------------------------------------------------
    def init(self) -> None:
        """The global model as FedAvg, and ``c = 0`` over the model's parameters."""
        super().init()
        first = self.server.clients[0]
        names = {n for n, _ in self.server.build(first.spec.model).named_parameters()}
        model = self.state["global"][self.group(first)]
        self.state["control"] = {k: torch.zeros_like(v) for k, v in model.items() if k in names}

    def configure(self, client: ClientInfo) -> dict[str, Any]:
        """The global model and the server control variate ``c``."""
        message = dict(super().configure(client))
        message.update({PREFIX + k: v for k, v in self.state["control"].items()})
        return message

    def aggregate(self, results: list[ClientResult]) -> None:
        """Sample-weighted mean of the models (then ``server_update``) and
        ``c += sum(delta c_i) / N``."""
        if not results:
            return
        models = [{k: v for k, v in r.payload.items() if not k.startswith(PREFIX)} for r in results]
        group = self.group(results[0].client)
        old = self.state["global"][group]
        avg = self.server.combine.mean(
            models, [r.n_samples for r in results], reference=old, who=[r.client.id for r in results]
        )
        self.state["global"][group] = self.server_update(group, old, avg)
        n = len(self.server.clients)
        control = self.state["control"]
        # sum(delta c_i) / N = |S| / N * mean(delta c_i): the mean through the run's combiner
        deltas = self.server.combine.mean(
            [{k: r.payload[PREFIX + k].to(control[k].dtype) for k in control} for r in results],
            [1.0] * len(results),
            reference={k: torch.zeros_like(v) for k, v in control.items()},
        )
        for k in control:
            control[k] = control[k] + deltas[k] * (len(results) / n)

    def server_update(self, group: str, old: dict[str, Tensor], avg: dict[str, Tensor]) -> dict[str, Tensor]:
        """``x + eta_g * (avg - x)``."""
        lr = self.params.server_lr
        if lr == 1.0:
            return avg
        return {k: (old[k] + lr * (v - old[k])) if v.is_floating_point() else v for k, v in avg.items()}

    # ---- client ----------------------------------------------------------------------------------
    def local_update(self, ctx: ClientContext) -> None:
        """Train with the corrected gradient, then update ``c_i`` (option I or II)."""
        params = dict(ctx.model.named_parameters())
        c = {k: ctx.received[PREFIX + k] for k in params if PREFIX + k in ctx.received}
        c_i = ctx.state.get("control") or {k: torch.zeros_like(v) for k, v in c.items()}
        ctx.scratch["correction"] = {k: (c[k] - c_i[k]).detach() for k in c}
        start = {k: p.detach().clone() for k, p in params.items() if k in c}
        option = self._option(ctx)
        grad = self._full_gradient(ctx, list(c)) if option == "gradient" else None
        super().local_update(ctx)
        steps = sum(s.steps for s in ctx.fit_stats)
        if grad is not None:
            new = grad
        elif steps > 0:
            eta = self._effective_lr(ctx)
            new = {k: c_i[k] - c[k] + (start[k] - params[k].detach()) / (steps * eta) for k in c}
        else:  # no data or no step taken: nothing learned about this client's gradient
            new = c_i
        ctx.state["control"] = new
        ctx.scratch["delta_control"] = {k: new[k] - c_i[k] for k in c}

    def local_loss(self, ctx: ClientContext, x: Tensor, y: Tensor) -> Tensor:
        """Task loss plus ``<w, c - c_i>``: its gradient adds the drift correction to every step."""
        loss = super().local_loss(ctx, x, y)
        correction = ctx.scratch.get("correction")
        if not correction:
            return loss
        return loss + sum(
            (p * correction[k]).sum() for k, p in ctx.model.named_parameters() if k in correction
        )

    def payload(self, ctx: ClientContext) -> dict[str, Any]:
        """The model and ``delta c_i``."""
        out = dict(super().payload(ctx))
        out.update({PREFIX + k: v for k, v in ctx.scratch.get("delta_control", {}).items()})
        return out

    # ---- helpers ---------------------------------------------------------------------------------
    def _option(self, ctx: ClientContext) -> str:
        if self.params.control != "auto":
            return self.params.control
        return "difference" if ctx.spec.optimizer == "sgd" else "gradient"

    @classmethod
    def private_payload(cls, params: Any, spec: Any) -> str | None:
        option = (
            params.control
            if params.control != "auto"
            else ("difference" if spec.optimizer == "sgd" else "gradient")
        )
        if option != "gradient":
            return None  # option II's control variate is computed from the model change
        return (
            f"{cls.name} with control 'gradient' (or 'auto' for an {spec.optimizer} client) sends a control "
            f"variate computed from a full gradient over the client's private data, which DP-SGD does not "
            f"protect; set control to 'difference' and the client's optimiser to sgd"
        )

    @staticmethod
    def _effective_lr(ctx: ClientContext) -> float:
        """The step size one unit of gradient moves the weights by in steady state."""
        spec = ctx.spec
        if spec.optimizer == "sgd" and spec.momentum > 0:
            return spec.lr / (1 - spec.momentum)
        return spec.lr

    @staticmethod
    def _full_gradient(ctx: ClientContext, names: list[str]) -> dict[str, Tensor]:
        """Gradient of the task loss over all of the client's training data at the current
        weights (option I), accumulated in mini-batches without changing the weights."""
        model, n = ctx.model, len(ctx.y)
        params = dict(model.named_parameters())
        total = {k: torch.zeros_like(params[k]) for k in names}
        if n == 0:
            return total
        was_training = model.training
        model.train()
        step = max(ctx.spec.batch_size, 256)
        for start in range(0, n, step):
            xb, yb = ctx.x[start : start + step], ctx.y[start : start + step]
            grads = torch.autograd.grad(
                ctx.loss(model(xb), yb), [params[k] for k in names], allow_unused=True
            )
            for k, g in zip(names, grads, strict=True):
                if g is not None:
                    total[k] += g.detach() * (len(yb) / n)
        model.train(was_training)
        return total
