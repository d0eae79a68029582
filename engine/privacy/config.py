"""Config sections of privacy: a client's ``privacy`` (DP-SGD on its own data), the run's
``server_dp`` (user-level DP-FedAvg at the server) and ``secure_aggregation``::

    "clients": [{"name": "hospital-a", "privacy": {"clip_norm": 1.0, "target_epsilon": 4}}, ...],
    "server_dp": {"noise_multiplier": 1.0, "clip_norm": 0.5, "clipping": "adaptive"},
    "secure_aggregation": {"threshold": 0.6}

This module stays light (pydantic only): no torch, no accountant. The mechanisms live in
:mod:`engine.privacy.dpsgd`, :mod:`engine.privacy.server_dp` and :mod:`engine.privacy.secagg`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Accountant = Literal["rdp", "prv"]


class ClientPrivacy(BaseModel):
    """DP-SGD (Abadi et al. 2016, arXiv:1607.00133) on one client's training data: every
    record's gradient is clipped to ``clip_norm``, Gaussian noise of standard deviation
    ``noise_multiplier x clip_norm`` is added to their sum, and batches are drawn by Poisson
    sampling (each record independently, with probability batch size / records), which is what
    the accountant assumes. Protects each record of this client's data: (epsilon, delta)-DP for
    everything the client sends, which is computed from its model (post-processing)."""

    model_config = ConfigDict(extra="forbid")

    clip_norm: float = Field(
        1.0,
        gt=0,
        le=1e4,
        description="largest L2 norm of one record's gradient; larger gradients are scaled down to it",
    )
    noise_multiplier: float | None = Field(
        None,
        gt=0,
        le=1e3,
        description="noise standard deviation as a multiple of the clipping norm; empty: "
        "calibrated so the run spends exactly the target epsilon",
    )
    target_epsilon: float | None = Field(
        None,
        gt=0,
        le=1e3,
        description="privacy budget epsilon for the whole run. Without a noise multiplier "
        "the noise is calibrated to spend it over every round the client could "
        "train; with one, the client stops training before a round that would "
        "exceed it",
    )
    delta: float | None = Field(
        None,
        gt=0,
        lt=1,
        description="delta of (epsilon, delta)-DP; empty: 1/n for a client with n training records",
    )
    accountant: Accountant = Field(
        "rdp",
        description="privacy accountant (Opacus): rdp (Renyi DP, Mironov "
        "2017) or prv (privacy random variables, Gopi et al. "
        "2021: tighter)",
    )

    @model_validator(mode="after")
    def _noise_or_budget(self) -> ClientPrivacy:
        if self.noise_multiplier is None and self.target_epsilon is None:
            raise ValueError(
                "give a noise multiplier or a target epsilon (or both: the epsilon is then a "
                "budget at which the client stops)"
            )
        return self


class ServerDP(BaseModel):
    """User-level DP-FedAvg (McMahan et al. 2018, arXiv:1710.06963) at the server: each client's
    model update is clipped to ``clip_norm``, the clipped updates are summed with equal weights,
    Gaussian noise of standard deviation ``noise_multiplier x clip_norm`` is added, and the sum is
    divided by the expected number of clients per round. With adaptive clipping (Andrew et al.
    2021, arXiv:1905.03871) the norm follows a quantile of the update norms, estimated from a noisy
    count. Protects each client's whole contribution, for the strategies that average models."""

    model_config = ConfigDict(extra="forbid")

    noise_multiplier: float | None = Field(
        None,
        gt=0,
        le=1e3,
        description="noise standard deviation as a multiple of the clipping norm; empty: "
        "calibrated to the target epsilon",
    )
    target_epsilon: float | None = Field(
        None, gt=0, le=1e3, description="user-level epsilon for the whole run (calibrates the noise)"
    )
    delta: float | None = Field(None, gt=0, lt=1, description="delta; empty: 1/N for N clients")
    clip_norm: float = Field(
        1.0,
        gt=0,
        le=1e6,
        description="largest L2 norm of one client's update (the starting value under adaptive clipping)",
    )
    clipping: Literal["fixed", "adaptive"] = Field(
        "fixed", description="fixed: the norm stays; adaptive: it tracks a quantile of the updates' norms"
    )
    target_quantile: float = Field(0.5, gt=0, lt=1, description="adaptive: share of updates left unclipped")
    clip_lr: float = Field(0.2, gt=0, le=10, description="adaptive: step of the geometric norm update")
    count_noise: float | None = Field(
        None,
        gt=0,
        le=1e3,
        description="adaptive: noise std of the count of unclipped updates; empty: expected "
        "clients per round / 20 (the paper's choice)",
    )
    accountant: Accountant = Field("rdp", description="privacy accountant: rdp or prv")

    @model_validator(mode="after")
    def _noise_or_budget(self) -> ServerDP:
        if self.noise_multiplier is None and self.target_epsilon is None:
            raise ValueError("give a noise multiplier or a target epsilon")
        return self


class SecureAggregation(BaseModel):
    """Secure aggregation, simulated (Bonawitz et al. 2017, "Practical Secure Aggregation for
    Privacy-Preserving Machine Learning", CCS): every client masks its update with pairwise masks
    that cancel in the sum, so the server learns only the total. Clients that drop out after the
    key agreement are recovered from secret shares held by the others while at least
    ``threshold`` of the selected clients report; otherwise the round's update is discarded."""

    model_config = ConfigDict(extra="forbid")

    threshold: float = Field(
        0.5,
        gt=0,
        le=1,
        description="share of a round's selected clients that must report "
        "for the secret shares to recover the dropped clients' "
        "masks (Shamir threshold; at least 2 clients)",
    )
