"""The vectorized executor's optimiser (:mod:`engine.executors.vectorized`): SGD, Adam and AdamW
stepping the stacked parameters of several clients at once, each with its own hyperparameters."""

from __future__ import annotations

from functools import partial

import torch
from torch import Tensor


class StackedOptimizer:
    """SGD (momentum, weight decay), Adam and AdamW over the stacked ``(k, ...)`` parameters of
    ``k`` clients with per-client hyperparameters, following ``torch.optim``'s update rules, in a
    few in-place passes per tensor (no per-step temporaries the size of the model).

    Clients not ``active`` at a step keep their parameters and state unchanged. State is created
    at the first step from that step's gradients, as ``torch.optim`` does (``buf = g``), so no
    zero-filled buffers are allocated.
    """

    BETA1, BETA2, EPS = 0.9, 0.999, 1e-8

    def __init__(
        self, kind: str, params: dict[str, Tensor], lr: Tensor, momentum: Tensor, wd: Tensor
    ) -> None:
        self.kind, self.params = kind, params
        self.lr, self.momentum, self.wd = lr, momentum, wd
        self.decay = bool((wd > 0).any())
        self.use_momentum = bool((momentum != 0).any())
        self.state: dict[str, dict[str, Tensor]] = {n: {} for n in params}
        """Per parameter: ``buf`` (SGD momentum) or ``m``/``v`` (Adam), stacked like it."""

    @staticmethod
    def _col(v: Tensor, p: Tensor) -> Tensor:
        """A per-client vector shaped to broadcast against a stacked tensor ``(k, ...)``."""
        return v.reshape((-1,) + (1,) * (p.dim() - 1))

    def _state(self, n: str, key: str, m: int) -> Tensor | None:
        """The first ``m`` rows of a state tensor (``None`` before the first step)."""
        value = self.state[n].get(key)
        return None if value is None else value[:m]

    def _init_state(self, n: str, key: str, first: Tensor) -> Tensor:
        """Create a state tensor from the first step's value for the first ``len(first)`` clients
        (zero for the others, which had no batch yet); returns the rows in use."""
        full = self.params[n]
        if len(first) == len(full):
            self.state[n][key] = first
            return first
        value = self.state[n][key] = torch.zeros_like(full)
        value[: len(first)] = first
        return value[: len(first)]

    @torch.no_grad()
    def step(self, grads: dict[str, Tensor], active: Tensor, steps: Tensor, m: int | None = None) -> None:
        """One step with ``grads`` (consumed: updated in place) for the ``active`` ones of the
        first ``m`` clients (default: all); the others are left as they are."""
        m = len(active) if m is None else m
        everyone = bool(active.all())
        ref = next(iter(self.params.values()))
        act_v = active.to(ref.dtype)
        t = steps.clamp(min=1).to(ref.dtype)
        for n, p_full in self.params.items():
            p = p_full[:m]
            g, col = grads[n], partial(self._col, p=p)
            lr, wd, act = col(self.lr[:m]), col(self.wd[:m]), col(act_v)
            if self.kind == "sgd":
                if self.decay:
                    g.addcmul_(p, wd)
                if self.use_momentum:
                    buf = self._state(n, "buf", m)
                    if not everyone:
                        g.mul_(act)
                    if buf is None:  # first step: buf = g (zero for clients without a batch)
                        buf = self._init_state(n, "buf", g)
                    elif everyone:
                        buf.mul_(col(self.momentum[:m])).add_(g)
                    else:  # inactive clients: buf * 1 + 0
                        buf.mul_(torch.where(act > 0, col(self.momentum[:m]), 1.0)).add_(g)
                    g = buf
                p.addcmul_(g, lr if everyone else lr * act, value=-1.0)
                continue
            b1, b2 = self.BETA1, self.BETA2
            if self.kind == "adam":
                if self.decay:
                    g.addcmul_(p, wd)
            elif self.decay:  # adamw: decoupled decay, p * (1 - lr * wd) before the Adam step
                p.mul_(1 - lr * wd * act)
            if not everyone:
                g.mul_(act)
            if "m" not in self.state[n]:  # first step from zero state: m = (1-b1) g, v = (1-b2) g^2
                v = self._init_state(n, "v", torch.mul(g, g).mul_(1 - b2))
                mom = self._init_state(n, "m", g.mul_(1 - b1))
            else:
                mom, v = self._state(n, "m", m), self._state(n, "v", m)
                keep1 = b1 if everyone else torch.where(act > 0, b1, 1.0)
                keep2 = b2 if everyone else torch.where(act > 0, b2, 1.0)
                v.mul_(keep2).addcmul_(g, g, value=1 - b2)
                mom.mul_(keep1).add_(g, alpha=1 - b1)
            tc = col(t)
            denom = v.sqrt().div_(torch.sqrt(1 - b2**tc)).add_(self.EPS)
            step_size = lr / (1 - b1**tc)
            p.addcdiv_(mom * (step_size if everyone else step_size * act), denom, value=-1.0)
