"""Recurrent networks: LSTM (Hochreiter & Schmidhuber, 1997) and GRU (Cho et al., 2014).

Every input is read as a sequence of steps (:func:`sequence_shape`, :class:`AsSequence`, also used
by the 1-D CNN): a sequence ``(T, F)`` as it is, an image ``(C, H, W)`` row by row (``T = H`` steps
of ``C * W`` features), a tabular row ``(F,)`` as ``F`` steps of one feature. The representation is
the last layer's final hidden state (both directions when bidirectional) through a linear layer.

The FLOP counter (:mod:`engine.flops`) does not see inside the fused recurrent kernels, so the
body reports them through ``recurrent_flops``. Note for HeteroFL: torch stacks the gates in each
weight (``4 * hidden`` rows for LSTM, ``3 * hidden`` for GRU), so a faithful width slice takes the
first rows of every gate block, not the first rows of the tensor.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from pydantic import Field
from torch import Tensor, nn

from engine.models.base import ARCHITECTURES, Architecture, ArchParams, InputSpec, relu_init, scaled


def sequence_shape(spec: InputSpec) -> tuple[int, int]:
    """``(steps, features per step)`` of an input read as a sequence."""
    if spec.kind == "image":
        c, h, w = spec.shape
        return h, c * w
    if spec.kind == "tabular":
        return spec.shape[0], 1
    steps, features = spec.shape
    return steps, features


class AsSequence(nn.Module):
    """Reshape a batch ``(B, *spec.shape)`` to ``(B, T, F)`` as :func:`sequence_shape` says."""

    def __init__(self, spec: InputSpec) -> None:
        super().__init__()
        self.kind = spec.kind
        self.steps, self.features = sequence_shape(spec)

    def forward(self, x: Tensor) -> Tensor:
        if self.kind == "image":  # (B, C, H, W) -> (B, H, C, W): one step per row
            x = x.permute(0, 2, 1, 3)
        return x.reshape(x.shape[0], self.steps, self.features)


class RecurrentParams(ArchParams):
    """Size knobs of the recurrent networks."""

    hidden: int = Field(64, ge=4, le=1024, description="hidden units per layer and direction")
    layers: int = Field(1, ge=1, le=4, description="stacked recurrent layers")
    bidirectional: bool = Field(False, description="also read the sequence backwards")


class RecurrentBody(nn.Module):
    """Sequence view -> LSTM/GRU -> final hidden state -> linear -> ReLU."""

    def __init__(
        self,
        cell: type[nn.RNNBase],
        gates: int,
        params: RecurrentParams,
        spec: InputSpec,
        rep_dim: int,
    ) -> None:
        super().__init__()
        self.gates = gates
        self.directions = 2 if params.bidirectional else 1
        self.read = AsSequence(spec)
        self.rnn = cell(
            self.read.features,
            scaled(params.hidden, params.width),
            num_layers=params.layers,
            batch_first=True,
            bidirectional=params.bidirectional,
        )
        self.proj = nn.Linear(self.rnn.hidden_size * self.directions, rep_dim)
        if spec.kind == "image":  # see relu_init
            relu_init(self.proj)
        self.act = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        _, h_n = self.rnn(self.read(x))
        if isinstance(h_n, tuple):  # LSTM returns (h_n, c_n)
            h_n = h_n[0]
        last = h_n[-self.directions :]  # the last layer, one row per direction
        return self.act(self.proj(torch.cat(list(last), dim=-1)))

    def recurrent_flops(self) -> int:
        """Forward FLOPs of the recurrent layers for one sample: ``2 x`` multiply-adds of the input
        and hidden matmuls of every gate, at every step, in every layer and direction."""
        hidden, steps = self.rnn.hidden_size, self.read.steps
        total = 0
        for layer in range(self.rnn.num_layers):
            width_in = self.read.features if layer == 0 else hidden * self.directions
            total += 2 * self.gates * hidden * (width_in + hidden) * steps * self.directions
        return total


class Recurrent(Architecture):
    """Shared by :class:`LSTM` and :class:`GRU`; subclasses pick the cell and its gate count."""

    cell: ClassVar[type[nn.RNNBase]]
    gates: ClassVar[int]
    kinds = frozenset({"image", "sequence", "tabular"})
    how_it_reads = {
        "sequence": "one step per time step",
        "image": "row by row: one step per row of C x W pixels",
        "tabular": "one step per feature, one value each",
    }
    Params = RecurrentParams

    @classmethod
    def body(cls, params: RecurrentParams, spec: InputSpec, rep_dim: int) -> nn.Module:
        return RecurrentBody(cls.cell, cls.gates, params, spec, rep_dim)


@ARCHITECTURES.register("lstm")
class LSTM(Recurrent):
    cell = nn.LSTM
    gates = 4
    description = "Long short-term memory network; the final hidden state is the representation."
    paper = "Hochreiter & Schmidhuber, Long Short-Term Memory, Neural Computation 1997"


@ARCHITECTURES.register("gru")
class GRU(Recurrent):
    cell = nn.GRU
    gates = 3
    description = "Gated recurrent unit network; the final hidden state is the representation."
    paper = (
        "Cho et al., Learning Phrase Representations using RNN Encoder-Decoder for Statistical "
        "Machine Translation, EMNLP 2014"
    )
