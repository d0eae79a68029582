"""Privacy accounting through Opacus's accountants (an optional extra: ``pip install
'fedmosaic[privacy]'``): the epsilon a history of subsampled Gaussian steps spends, and the
noise multiplier that spends a target epsilon.

A history is a list of ``(noise_multiplier, sample_rate, steps)`` triples, the format of
``opacus.accountants.IAccountant.history``. Both accountants assume **Poisson sampling** at
``sample_rate``: each record (DP-SGD) or client (DP-FedAvg) takes part in a step independently with
that probability. DP-SGD clients here do sample that way (:mod:`engine.privacy.dpsgd`);
the server's client sampling deviates (see :mod:`engine.privacy.server_dp`).

- ``rdp``: Renyi DP of the sampled Gaussian mechanism (Mironov 2017; Mironov, Talwar & Zhang 2019,
  arXiv:1908.10530), converted to (epsilon, delta). Orders up to 1024 are searched (Opacus's default
  stops at 63, which is loose for little noise per record).
- ``prv``: privacy random variables (Gopi, Lee & Wutschitz 2021, arXiv:2106.02848): numerically
  composed privacy loss distributions, tighter than RDP; the upper end of its error bound is
  reported.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from functools import lru_cache

from engine.errors import ConfigError

History = Sequence[tuple[float, float, int]]

INSTALL_HINT = (
    "differential privacy needs Opacus's accountants: pip install 'fedmosaic[privacy]' "
    "(or pip install 'opacus>=1.6')"
)

ALPHAS: tuple[float, ...] = tuple(
    [1 + x / 10.0 for x in range(1, 100)]
    + list(range(12, 64))
    + [80, 96, 128, 160, 192, 256, 384, 512, 768, 1024]
)
"""Renyi orders searched by the ``rdp`` accountant (Opacus's defaults plus larger ones)."""
COARSE: tuple[float, ...] = tuple(a for a in ALPHAS if float(a).is_integer())
"""The integer orders of :data:`ALPHAS`: cheap to compute, used to bracket a calibration."""

PRV_EPS_ERROR = 0.01
"""Allowed numerical error of the ``prv`` accountant's epsilon (it reports the upper bound)."""


def available() -> bool:
    """Whether the accountants can be imported here."""
    from importlib.util import find_spec

    return find_spec("opacus") is not None


def _accountant(kind: str):
    if not available():
        raise ConfigError(INSTALL_HINT)
    if kind == "rdp":
        from opacus.accountants import RDPAccountant

        return RDPAccountant()
    if kind == "prv":
        from opacus.accountants import PRVAccountant

        return PRVAccountant()
    raise ConfigError(f"unknown accountant '{kind}'; valid: rdp, prv")


def epsilon(history: History, delta: float, kind: str = "rdp", orders: tuple[float, ...] = ALPHAS) -> float:
    """The epsilon spent by ``history`` at ``delta`` (0 for an empty history).

    :param orders: Renyi orders the ``rdp`` accountant searches (fewer: faster, never tighter).
    :raises ConfigError: Opacus missing, or an unknown accountant.
    """
    steps = [(float(s), float(q), int(n)) for s, q, n in history if int(n) > 0]
    if not steps:
        return 0.0
    if not available():
        raise ConfigError(INSTALL_HINT)
    steps = _merged(steps)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Opacus warns when the best order is the last one searched
        if kind == "rdp":
            # RDPAccountant.get_epsilon's computation, with each step's RDP curve computed once
            # per (noise, rate) instead of once per call: the same floats, in the same order
            rdp = sum([_rdp_step(s, q, orders) * n for s, q, n in steps])
            eps = rdp_analysis().get_privacy_spent(orders=list(orders), rdp=rdp, delta=delta)[0]
            # the conversion can dip below 0 for a loose delta and much noise: epsilon is at least 0
            return max(0.0, float(eps))
        acc = _accountant(kind)
        acc.history = steps
        try:
            return max(0.0, float(acc.get_epsilon(delta, eps_error=PRV_EPS_ERROR)))
        except (ValueError, RuntimeError, OverflowError, AssertionError):
            # outside the PRV accountant's numerical domain (e.g. very many steps with little
            # noise): the RDP bound is always valid, if looser
            return epsilon(steps, delta, "rdp")


@lru_cache(maxsize=1)
def rdp_analysis():
    """Opacus's RDP analysis module (``opacus.accountants.analysis.rdp``: numpy and
    scipy.special only), loaded from its file on its own: importing it through the ``opacus``
    package first imports the whole library (torch.distributed, scipy.stats; 4-10 s on a busy
    machine) for two pure functions. The same code either way."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.find_spec("opacus")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(INSTALL_HINT)
    path = Path(list(spec.submodule_search_locations)[0]) / "accountants" / "analysis" / "rdp.py"
    loaded = importlib.util.spec_from_file_location("_fedmosaic_opacus_rdp", path)
    if loaded is None or loaded.loader is None:
        raise ConfigError(INSTALL_HINT)
    module = importlib.util.module_from_spec(loaded)
    loaded.loader.exec_module(module)
    return module


@lru_cache(maxsize=4096)
def _rdp_step(noise_multiplier: float, sample_rate: float, orders: tuple[float, ...] = ALPHAS):
    """The RDP of one subsampled Gaussian step at every order of ``orders`` (numpy array)."""
    return rdp_analysis().compute_rdp(
        q=sample_rate, noise_multiplier=noise_multiplier, steps=1, orders=list(orders)
    )


def _merged(history: Sequence[tuple[float, float, int]]) -> list[tuple[float, float, int]]:
    """Consecutive entries with the same noise and sample rate as one (what Opacus does itself)."""
    out: list[tuple[float, float, int]] = []
    for s, q, n in history:
        if out and out[-1][0] == s and out[-1][1] == q:
            out[-1] = (s, q, out[-1][2] + n)
        else:
            out.append((s, q, n))
    return out


@lru_cache(maxsize=1024)
def noise_for(
    target_epsilon: float, delta: float, sample_rate: float, steps: int, kind: str = "rdp"
) -> float:
    """The smallest noise multiplier (to 1%) whose ``steps`` subsampled Gaussian steps at
    ``sample_rate`` spend at most ``target_epsilon`` at ``delta``.

    :raises ConfigError: Opacus missing, or no noise below 1000 x the clipping norm reaches the target.
    """
    if steps <= 0:
        raise ConfigError("no training step is planned, so there is no noise to calibrate")
    # search on the integer orders first (cheap; a subset of ALPHAS, so never tighter), then
    # narrow the last bracket with every order
    coarse = COARSE if kind == "rdp" else ALPHAS

    def spent(sigma: float, orders: tuple[float, ...]) -> float:
        return epsilon([(sigma, sample_rate, steps)], delta, kind, orders)

    low, high = 0.0, 1.0
    while spent(high, coarse) > target_epsilon:
        low, high = high, 2 * high
        if high > 1000:
            raise ConfigError(
                f"epsilon {target_epsilon:g} cannot be reached with delta {delta:.3g} over {steps:,} steps "
                f"at sampling rate {sample_rate:.3g}, even with noise 1000 x the clipping norm; allow a "
                "larger epsilon, or train fewer rounds, epochs or larger-fraction batches"
            )
    while high - low > 0.01 * high:
        mid = (low + high) / 2
        low, high = (mid, high) if spent(mid, coarse) > target_epsilon else (low, mid)
    if kind == "rdp":  # every order can only lower epsilon: the noise may shrink a little
        low = max(low, 0.85 * high)
        while high - low > 0.01 * high:
            mid = (low + high) / 2
            low, high = (mid, high) if spent(mid, ALPHAS) > target_epsilon else (low, mid)
    return high


def default_delta(n: int) -> float:
    """``1 / n`` for ``n`` records or clients (at least 1)."""
    return 1.0 / max(1, int(n))


def fmt_epsilon(value: float | None) -> str:
    """Epsilon for people: ``2.31``, ``0.052``, ``∞`` for none."""
    if value is None or not math.isfinite(value):
        return "∞"
    return f"{value:.3g}" if value < 100 else f"{value:,.0f}"
