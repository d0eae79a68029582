"""Tiny Transformer encoder (Vaswani et al., 2017) over tokens made from the input, mean-pooled to
the representation.

Tokens: a sequence gives one token per step and an image one token per row (a linear map of the
step's features plus a learned position embedding); a tabular row gives one token per feature,
``x_j * w_j + b_j`` with a vector pair per feature, as in the FT-Transformer of Gorishniy et al.
(2021), so no position embedding is needed. Blocks are pre-norm (Xiong et al., 2020), which trains
reliably at this size without warm-up.

The block is written out instead of using ``nn.TransformerEncoderLayer`` for two reasons.
In eval mode without gradients the torch layer runs a fused kernel that ``FlopCounterMode`` does
not see, and ``flops_per_sample`` counts in exactly that mode, so the layer would count zero FLOPs;
attention written as matmuls is counted in full. And torch stacks the query, key and value
projections in one ``in_proj_weight``; separate ``q``, ``k`` and ``v`` layers keep every parameter a
plain slice of the full model's when the width shrinks (HeteroFL).
"""

from __future__ import annotations

import math

import torch
from pydantic import Field, model_validator
from torch import Tensor, nn

from engine.models.base import ARCHITECTURES, Architecture, ArchParams, InputSpec, relu_init, scaled
from engine.models.rnn import AsSequence


class StepTokens(nn.Module):
    """Sequence or image: one token per step (row), a linear map plus a learned position."""

    def __init__(self, spec: InputSpec, d_model: int) -> None:
        super().__init__()
        self.read = AsSequence(spec)
        self.embed = nn.Linear(self.read.features, d_model)
        self.position = nn.Parameter(0.02 * torch.randn(self.read.steps, d_model))

    def forward(self, x: Tensor) -> Tensor:
        return self.embed(self.read(x)) + self.position


class FeatureTokens(nn.Module):
    """Tabular: one token per feature, ``x_j * weight_j + bias_j`` (FT-Transformer)."""

    def __init__(self, n_features: int, d_model: int) -> None:
        super().__init__()
        bound = 1 / math.sqrt(d_model)
        self.weight = nn.Parameter(torch.empty(n_features, d_model).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(n_features, d_model).uniform_(-bound, bound))

    def forward(self, x: Tensor) -> Tensor:
        return x.unsqueeze(-1) * self.weight + self.bias


class Block(nn.Module):
    """Pre-norm encoder block: multi-head self-attention, then a ReLU feed-forward layer."""

    def __init__(self, d_model: int, heads: int, ff: int) -> None:
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(d_model)
        self.q = nn.Linear(d_model, d_model)
        self.k = nn.Linear(d_model, d_model)
        self.v = nn.Linear(d_model, d_model)
        self.out = nn.Linear(d_model, d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.ff1 = nn.Linear(d_model, ff)
        self.ff2 = nn.Linear(ff, d_model)

    def attend(self, x: Tensor) -> Tensor:
        """Multi-head self-attention over the tokens of ``x`` ``(B, T, d_model)``."""
        b, t, d = x.shape
        q, k, v = (
            proj(x).view(b, t, self.heads, d // self.heads).transpose(1, 2)
            for proj in (self.q, self.k, self.v)
        )
        weights = (q @ k.transpose(-2, -1) / math.sqrt(d // self.heads)).softmax(dim=-1)
        return self.out((weights @ v).transpose(1, 2).reshape(b, t, d))

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attend(self.norm1(x))
        return x + self.ff2(self.ff1(self.norm2(x)).relu())


class TransformerBody(nn.Module):
    """Tokens -> encoder blocks -> layer norm -> mean over tokens -> linear -> ReLU."""

    def __init__(self, params: Transformer.Params, spec: InputSpec, rep_dim: int) -> None:
        super().__init__()
        heads = params.heads
        d_model = heads * max(1, round(scaled(params.d_model, params.width) / heads))
        ff = scaled(params.ff, params.width)
        self.tokens = (
            FeatureTokens(spec.shape[0], d_model) if spec.kind == "tabular" else StepTokens(spec, d_model)
        )
        self.blocks = nn.Sequential(*(Block(d_model, heads, ff) for _ in range(params.layers)))
        self.norm = nn.LayerNorm(d_model)
        self.proj = nn.Linear(d_model, rep_dim)
        if spec.kind == "image":  # see relu_init
            relu_init(self.proj)  # the representation's ReLU; the normalised blocks keep torch's init

    def forward(self, x: Tensor) -> Tensor:
        h = self.norm(self.blocks(self.tokens(x)))
        return self.proj(h.mean(dim=1)).relu()


@ARCHITECTURES.register("transformer")
class Transformer(Architecture):
    kinds = frozenset({"image", "sequence", "tabular"})
    description = "Self-attention encoder over tokens (steps, rows or features), mean-pooled."
    paper = (
        "Vaswani et al., Attention Is All You Need, NeurIPS 2017; tabular tokens after Gorishniy "
        "et al., Revisiting Deep Learning Models for Tabular Data, NeurIPS 2021"
    )
    how_it_reads = {
        "sequence": "one token per time step, plus a learned position",
        "image": "one token per row of C x W pixels, plus a learned position",
        "tabular": "one token per feature (FT-Transformer feature embedding)",
    }

    class Params(ArchParams):
        d_model: int = Field(
            64, ge=4, le=512, description="token width; scaled by width, kept a multiple of heads"
        )
        heads: int = Field(4, ge=1, le=16, description="attention heads; must divide d_model")
        layers: int = Field(2, ge=1, le=8, description="encoder blocks")
        ff: int = Field(128, ge=4, le=2048, description="hidden units of each feed-forward layer")

        @model_validator(mode="after")
        def _heads_divide_d_model(self) -> Transformer.Params:
            if self.d_model % self.heads:
                raise ValueError(f"d_model ({self.d_model}) must be a multiple of heads ({self.heads})")
            return self

    @classmethod
    def body(cls, params: Params, spec: InputSpec, rep_dim: int) -> nn.Module:
        return TransformerBody(params, spec, rep_dim)
