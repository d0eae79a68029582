"""FedPer — Arivazhagan et al., "Federated Learning with Personalization Layers", 2019
(arXiv:1912.00818).

Clients share the base layers and keep personal top layers: here the body (everything up to the
``rep_dim`` representation) is averaged and the linear head never leaves the client. Each client
is evaluated with the latest shared body and its own head.

Mixed rosters: bodies of different architectures cannot be averaged, so clients average their body
with the clients that use the same model (same architecture and knobs) and with nobody else. A
client whose model nobody else uses therefore trains alone (the compatibility check says so).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from engine.strategies.base import STRATEGIES, ClientInfo, Strategy

if TYPE_CHECKING:
    from engine.config import ClientSpec


@STRATEGIES.register("fedper")
class FedPer(Strategy):
    paper = "Arivazhagan et al. 2019, Federated Learning with Personalization Layers"
    url = "https://arxiv.org/abs/1912.00818"
    family = "parameter sharing"
    description = (
        "Share the body (feature extractor), keep a personal head per client. Mixed rosters: "
        "bodies are averaged within each group of clients using the same model."
    )
    shared = ("body.",)
    same_architecture = False

    def group(self, client: ClientInfo) -> str:
        """One body per model spec."""
        return client.arch_key

    @classmethod
    def caveat(cls, roster: Sequence[ClientSpec], task: str, has_public: bool) -> str | None:
        return lonely_models(roster, "body")


def lonely_models(roster: Sequence[ClientSpec], part: str) -> str | None:
    """A note naming the clients whose model no other client uses (they share their ``part``
    with nobody), or ``None``."""
    members: dict[str, list[int]] = {}
    for i, spec in enumerate(roster):
        members.setdefault(spec.model_key, []).append(i)
    alone = [ids[0] for ids in members.values() if len(ids) == 1]
    if not alone or len(roster) < 2:
        return None
    names = ", ".join(f"{i} ({roster[i].name}, {roster[i].arch})" for i in alone[:5])
    more = f" and {len(alone) - 5} more" if len(alone) > 5 else ""
    if len(alone) == 1:
        return (
            f"client {names} uses a model nobody else uses: its {part} is shared with nobody "
            f"(trains as local)"
        )
    return (
        f"clients {names}{more} use models nobody else uses: their {part}s are shared with nobody "
        f"(they train as local)"
    )
