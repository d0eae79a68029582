"""LSTM and GRU forward passes written with plain tensor operations, step by step, so that
``torch.func.vmap`` can batch per-record gradients through them: torch's fused recurrent kernels
have no batching rule (the GRU's fails under ``vmap``, the LSTM's falls back to a slow loop).

:func:`unrolled` swaps a model's ``nn.LSTM``/``nn.GRU`` forwards for these while DP-SGD computes
per-record gradients; the equations and the parameter layout are torch's (gates stacked in the
weight rows: LSTM ``i, f, g, o``, GRU ``r, z, n``; ``_reverse`` parameters for the backward
direction; layer ``k``'s input is layer ``k - 1``'s outputs of both directions), and the outputs
are the modules' own to float precision (tested). Modules with dropout between layers or LSTM
projections keep their fused forward.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn


def _cell(
    kind: str,
    x: Tensor,
    h: Tensor,
    c: Tensor | None,
    w_ih: Tensor,
    w_hh: Tensor,
    b_ih: Tensor | None,
    b_hh: Tensor | None,
) -> tuple[Tensor, Tensor | None]:
    gi = x @ w_ih.T + (b_ih if b_ih is not None else 0)
    gh = h @ w_hh.T + (b_hh if b_hh is not None else 0)
    if kind == "LSTM":
        i, f, g, o = (gi + gh).chunk(4, dim=-1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(c), c
    ir, iz, in_ = gi.chunk(3, dim=-1)
    hr, hz, hn = gh.chunk(3, dim=-1)
    r, z = torch.sigmoid(ir + hr), torch.sigmoid(iz + hz)
    n = torch.tanh(in_ + r * hn)
    return (1 - z) * n + z * h, None


def forward(module: nn.RNNBase, x: Tensor, hx: object = None) -> tuple[Tensor, object]:
    """``module(x)`` (an ``nn.LSTM`` or ``nn.GRU``) step by step from a zero state.

    :raises NotImplementedError: an initial state is given (the fused forward is used then).
    """
    if hx is not None:
        raise NotImplementedError("an initial recurrent state")
    kind = type(module).__name__
    if not module.batch_first:
        x = x.transpose(0, 1)
    batch, steps = x.shape[0], x.shape[1]
    hidden, directions = module.hidden_size, 2 if module.bidirectional else 1
    finals_h, finals_c = [], []
    layer_in = x
    for k in range(module.num_layers):
        outs = []
        for d in range(directions):
            sfx = f"_l{k}" + ("_reverse" if d else "")
            w_ih, w_hh = getattr(module, "weight_ih" + sfx), getattr(module, "weight_hh" + sfx)
            b_ih = getattr(module, "bias_ih" + sfx) if module.bias else None
            b_hh = getattr(module, "bias_hh" + sfx) if module.bias else None
            h = x.new_zeros(batch, hidden)
            c = x.new_zeros(batch, hidden) if kind == "LSTM" else None
            seq: list[Tensor] = [x.new_zeros(0)] * steps
            order = range(steps - 1, -1, -1) if d else range(steps)
            for t in order:
                h, c = _cell(kind, layer_in[:, t], h, c, w_ih, w_hh, b_ih, b_hh)
                seq[t] = h
            outs.append(torch.stack(seq, dim=1))
            finals_h.append(h)
            if c is not None:
                finals_c.append(c)
        layer_in = torch.cat(outs, dim=-1) if directions == 2 else outs[0]
    output = layer_in if module.batch_first else layer_in.transpose(0, 1)
    h_n = torch.stack(finals_h)
    return output, ((h_n, torch.stack(finals_c)) if kind == "LSTM" else h_n)


def supported(module: nn.Module) -> bool:
    """Whether :func:`forward` reproduces this module."""
    if not isinstance(module, (nn.LSTM, nn.GRU)):
        return False
    return not module.dropout and not getattr(module, "proj_size", 0)


@contextmanager
def unrolled(model: nn.Module) -> Iterator[bool]:
    """Within the block, ``model``'s supported recurrent modules run :func:`forward`; yields
    whether any did."""
    swapped = [m for m in model.modules() if supported(m)]
    try:
        for m in swapped:
            m.forward = (lambda mod: lambda x, hx=None: forward(mod, x, hx))(m)  # type: ignore[method-assign]
        yield bool(swapped)
    finally:
        for m in swapped:
            m.__dict__.pop("forward", None)
