"""2-D convolutional network for images, in the spirit of the CNN of McMahan et al. (FedAvg, 2017):
``depth`` blocks of convolution + ReLU + 2x2 max-pool, channels doubling per block, then a fully
connected layer to the representation.

The last feature map reaches the linear layer whole: it is flattened as it is while its sides are at
most ``FLAT_MAX`` pixels (8x8 digits end at 2x2, 28x28 images at 7x7 or 4x4, 32x32 at 8x8 or 5x5),
and average-pooled down to ``FLAT_MAX`` only past that size (64x64 images). An earlier version
pooled every map to 2x2 first; on 28x28 digits with the reference libraries' optimiser (SGD lr
0.005, batch 10) that model stayed at chance where the FedAvg CNN learnt (docs/peers.md).

``fedavg_cnn`` is the standard FedAvg CNN as PFLlib and HtFLlib run it (their ``FedAvgCNN``):
conv 5x5-32 (no padding), pool, conv 5x5-64, pool, a fully connected layer to the representation
and the linear head. On 28x28 inputs with ``rep_dim`` 512 its layers have exactly the reference's
shapes (1024 -> 512 -> classes). Blocks whose input is too small for an unpadded kernel (8x8
digits) are padded instead, so the preset reads any image.

The flattened map is channel-major, so the first features of a width-scaled model belong to its
first channels: parameter slices stay meaningful under HeteroFL.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator
from torch import nn

from engine.models.base import (
    ARCHITECTURES,
    FLAT_MAX,
    Architecture,
    ArchParams,
    InputSpec,
    map_to_representation,
    scaled,
)

__all__ = ["CNN", "FLAT_MAX", "FedAvgCNN", "conv_body"]


class CNNParams(ArchParams):
    """Size knobs of the convolutional networks."""

    channels: int = Field(
        32,
        ge=4,
        le=256,
        description="channels of the first block; each later block doubles them",
    )
    depth: int = Field(2, ge=1, le=4, description="number of convolution blocks")
    kernel: int = Field(3, ge=1, le=7, description="odd side of the square convolution kernel")
    padding: Literal["same", "valid"] = Field(
        "same",
        description="same: convolutions keep the map's size; valid: no padding, each "
        "convolution trims kernel - 1 pixels (the FedAvg CNN)",
    )

    @field_validator("kernel")
    @classmethod
    def _odd_kernel(cls, kernel: int) -> int:
        if kernel % 2 == 0:
            raise ValueError(f"must be odd so 'same' padding is symmetric, got {kernel}")
        return kernel


def conv_body(params: CNNParams, spec: InputSpec, rep_dim: int) -> nn.Sequential:
    """The layers of :class:`CNN` for ``spec``: conv blocks, the last map (pooled only past
    ``FLAT_MAX``), flattened, a linear layer to ``rep_dim`` and a ReLU."""
    c_in, h, w = spec.shape
    k = params.kernel
    layers: list[nn.Module] = []
    for i in range(params.depth):
        c_out = scaled(params.channels * 2**i, params.width)
        trim = k - 1 if params.padding == "valid" and min(h, w) - (k - 1) >= 2 else 0
        layers += [nn.Conv2d(c_in, c_out, k, padding=0 if trim else k // 2), nn.ReLU()]
        h, w = h - trim, w - trim
        if min(h, w) >= 2:
            layers.append(nn.MaxPool2d(2))
            h, w = h // 2, w // 2
        c_in = c_out
    return nn.Sequential(*layers, *map_to_representation(c_in, h, w, rep_dim))


@ARCHITECTURES.register("cnn")
class CNN(Architecture):
    kinds = frozenset({"image"})
    description = (
        "Convolution blocks with max-pooling, then a fully connected layer on the whole last feature map."
    )
    paper = (
        "McMahan et al., Communication-Efficient Learning of Deep Networks from Decentralized "
        "Data, AISTATS 2017"
    )
    how_it_reads = {"image": "convolutions over the 2-D pixel grid, channels as input planes"}
    Params = CNNParams

    @classmethod
    def body(cls, params: CNNParams, spec: InputSpec, rep_dim: int) -> nn.Module:
        return conv_body(params, spec, rep_dim)


class FedAvgCNNParams(CNNParams):
    """The FedAvg CNN's knobs: the cnn's, with the reference's values as defaults."""

    kernel: int = Field(5, ge=1, le=7, description="odd side of the square convolution kernel")
    padding: Literal["same", "valid"] = Field(
        "valid", description="valid: no padding, as the reference (blocks too small for it are padded)"
    )


@ARCHITECTURES.register("fedavg_cnn")
class FedAvgCNN(CNN):
    description = (
        "The standard FedAvg CNN (conv 5x5-32, pool, conv 5x5-64, pool, fully connected) "
        "as PFLlib and HtFLlib run it; rep_dim 512 gives its exact layer shapes."
    )
    Params = FedAvgCNNParams
