"""1-D convolutional network, after the fully convolutional time-series baseline of Wang, Yan &
Oates (2017): ``depth`` blocks of convolution along time + ReLU + 2x pooling, channels doubling per
block, an adaptive average pool to a few positions and a linear layer to the representation.

Inputs are read as sequences (:func:`engine.models.rnn.sequence_shape`): the features of a step are
the input channels and the convolution slides over the steps. A tabular row is one channel whose
length is the number of features. The pooled map keeps ``POOLED`` positions (not one) so tabular
features keep a trace of where they were; it is flattened channel-major, so width-scaled models
stay slices of the full one (HeteroFL).
"""

from __future__ import annotations

from pydantic import Field, field_validator
from torch import Tensor, nn

from engine.models.base import ARCHITECTURES, Architecture, ArchParams, InputSpec, scaled
from engine.models.rnn import AsSequence

POOLED = 4  # positions the adaptive pool keeps


class ChannelsFirst(nn.Module):
    """``(B, T, F)`` -> ``(B, F, T)``: features become convolution channels."""

    def forward(self, x: Tensor) -> Tensor:
        return x.transpose(1, 2)


@ARCHITECTURES.register("cnn1d")
class CNN1D(Architecture):
    kinds = frozenset({"image", "sequence", "tabular"})
    description = "Convolutions along the sequence axis with pooling, then a fully connected layer."
    paper = (
        "Wang, Yan & Oates, Time Series Classification from Scratch with Deep Neural Networks: "
        "A Strong Baseline, IJCNN 2017"
    )
    how_it_reads = {
        "sequence": "convolution over time, features as channels",
        "image": "rows as a sequence of H steps, C x W pixels as channels",
        "tabular": "one channel whose length is the number of features",
    }

    class Params(ArchParams):
        channels: int = Field(
            32,
            ge=4,
            le=256,
            description="channels of the first block; each later block doubles them",
        )
        depth: int = Field(2, ge=1, le=4, description="number of convolution blocks")
        kernel: int = Field(3, ge=1, le=9, description="odd length of the convolution kernel")

        @field_validator("kernel")
        @classmethod
        def _odd_kernel(cls, kernel: int) -> int:
            if kernel % 2 == 0:
                raise ValueError(f"must be odd so 'same' padding is symmetric, got {kernel}")
            return kernel

    @classmethod
    def body(cls, params: Params, spec: InputSpec, rep_dim: int) -> nn.Module:
        read = AsSequence(spec)
        length, c_in = read.steps, read.features  # tabular: F steps of 1 feature -> 1 channel
        layers: list[nn.Module] = [read, ChannelsFirst()]
        for i in range(params.depth):
            c_out = scaled(params.channels * 2**i, params.width)
            layers += [nn.Conv1d(c_in, c_out, params.kernel, padding="same"), nn.ReLU()]
            if length >= 2:
                layers.append(nn.MaxPool1d(2))
                length //= 2
            c_in = c_out
        layers += [
            nn.AdaptiveAvgPool1d(POOLED),
            nn.Flatten(),
            nn.Linear(c_in * POOLED, rep_dim),
            nn.ReLU(),
        ]
        return nn.Sequential(*layers)
