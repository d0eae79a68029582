"""Local-only training: every client trains its own model on its own data and nothing is shared.
The floor every collaborative method must beat."""

from __future__ import annotations

from engine.strategies.base import STRATEGIES, Strategy


@STRATEGIES.register("local")
class Local(Strategy):
    paper = "reference: no collaboration"
    family = "reference"
    description = "Each client trains alone on its own data; nothing is exchanged (the floor)."
    same_architecture = False
    collaborates = False
    sends = "nothing"
