"""2-D convolutional network for images, in the spirit of the CNN of McMahan et al. (FedAvg, 2017):
``depth`` blocks of 3x3 convolution + ReLU + 2x2 max-pool, channels doubling per block, then a
fully connected layer to the representation.

Pooling stops once the feature map is 1 pixel wide and an adaptive average pool brings every input
size to the same 2x2 map, so one configuration reads 8x8 digits as well as 32x32 colour images.
The flattened map is channel-major, so the first features of a width-scaled model belong to its
first channels: parameter slices stay meaningful under HeteroFL.
"""

from __future__ import annotations

from pydantic import Field, field_validator
from torch import nn

from engine.models.base import ARCHITECTURES, Architecture, ArchParams, InputSpec, scaled

POOLED = 2  # side of the map the adaptive pool produces


@ARCHITECTURES.register("cnn")
class CNN(Architecture):
    kinds = frozenset({"image"})
    description = "Convolution blocks with max-pooling, then a fully connected layer."
    paper = (
        "McMahan et al., Communication-Efficient Learning of Deep Networks from Decentralized "
        "Data, AISTATS 2017"
    )
    how_it_reads = {"image": "convolutions over the 2-D pixel grid, channels as input planes"}

    class Params(ArchParams):
        channels: int = Field(
            32, ge=4, le=256,
            description="channels of the first block; each later block doubles them",
        )
        depth: int = Field(2, ge=1, le=4, description="number of convolution blocks")
        kernel: int = Field(3, ge=1, le=7, description="odd side of the square convolution kernel")

        @field_validator("kernel")
        @classmethod
        def _odd_kernel(cls, kernel: int) -> int:
            if kernel % 2 == 0:
                raise ValueError(f"must be odd so 'same' padding is symmetric, got {kernel}")
            return kernel

    @classmethod
    def body(cls, params: Params, spec: InputSpec, rep_dim: int) -> nn.Module:
        c_in, h, w = spec.shape
        layers: list[nn.Module] = []
        for i in range(params.depth):
            c_out = scaled(params.channels * 2**i, params.width)
            layers += [nn.Conv2d(c_in, c_out, params.kernel, padding="same"), nn.ReLU()]
            if min(h, w) >= 2:
                layers.append(nn.MaxPool2d(2))
                h, w = h // 2, w // 2
            c_in = c_out
        layers += [
            nn.AdaptiveAvgPool2d(POOLED),
            nn.Flatten(),
            nn.Linear(c_in * POOLED * POOLED, rep_dim),
            nn.ReLU(),
        ]
        return nn.Sequential(*layers)
