"""The local optimisers a client may use, defined once: the config's choices, the training loop's
constructor, the memory estimate's optimiser copies and the vectorized executor's update rules all
read :data:`OPTIMIZERS`. (Imports no torch: the config reads the names.)"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch
    from torch import nn


@dataclass(frozen=True)
class Optimizer:
    """One kind of local optimiser.

    :param torch_class: its class in :mod:`torch.optim`.
    :param moments: copies of the weights it keeps per parameter (Adam: 2); SGD keeps one only
        with momentum (:attr:`momentum`).
    :param momentum: whether it takes the client's ``momentum``.
    """

    name: str
    label: str
    torch_class: str
    moments: int
    momentum: bool = False

    def copies(self, momentum: float = 0.0) -> int:
        """Copies of the weights this optimiser keeps with this ``momentum``."""
        return self.moments + (1 if self.momentum and momentum > 0 else 0)

    def make(
        self, params: Iterable[nn.Parameter], lr: float, momentum: float = 0.0, weight_decay: float = 0.0
    ) -> torch.optim.Optimizer:
        """A fresh optimiser over the parameters that require gradients."""
        import torch

        kwargs = {"lr": lr, "weight_decay": weight_decay, **({"momentum": momentum} if self.momentum else {})}
        return getattr(torch.optim, self.torch_class)([p for p in params if p.requires_grad], **kwargs)


OPTIMIZERS: dict[str, Optimizer] = {
    o.name: o
    for o in (
        Optimizer("sgd", "SGD", "SGD", moments=0, momentum=True),
        Optimizer("adam", "Adam", "Adam", moments=2),
        Optimizer("adamw", "AdamW (decoupled weight decay)", "AdamW", moments=2),
    )
}
OPTIMIZER_NAMES: tuple[str, ...] = tuple(OPTIMIZERS)
"""The names a client's ``optimizer`` may take (the config's choices)."""
