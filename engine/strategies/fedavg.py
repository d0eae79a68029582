"""FedAvg — McMahan et al., "Communication-Efficient Learning of Deep Networks from Decentralized
Data", AISTATS 2017 (arXiv:1602.05629). Clients train locally from the global model; the server
takes the sample-weighted mean of their parameters. Every hook is the base default."""

from __future__ import annotations

from engine.strategies.base import STRATEGIES, Strategy


@STRATEGIES.register("fedavg")
class FedAvg(Strategy):
    paper = "McMahan et al. 2017, Communication-Efficient Learning of Deep Networks from Decentralized Data"
    url = "https://arxiv.org/abs/1602.05629"
    family = "baseline"
    description = "Average every parameter, weighted by client sample counts. Needs one architecture."
    pitfalls = (
        "one global model serves clients whose mixes of labels differ and may fit none of them well; on "
        "skewed data a personalised strategy (FedPer, FedRep) may fit each client better."
    )
