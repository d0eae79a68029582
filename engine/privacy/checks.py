"""What can be privatised, checked before launch (called by :mod:`engine.validate`).

- :func:`strategy_problem` — why a strategy cannot run this roster's privacy settings (part of
  the compatibility check the Launch page shows): DP-SGD clients need a strategy whose uploads
  are computed from the trained model alone.
- :func:`problems` — errors and warnings of a design's privacy settings on its data: Opacus
  missing, layers DP-SGD cannot privatise (batch norm: use group norm), a target epsilon no noise
  can reach, settings that weaken the guarantee (a batch covering all records, preprocessing
  statistics shared without noise).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from engine.errors import ConfigError

if TYPE_CHECKING:
    from engine.config import ClientSpec, ExperimentConfig


def dp_clients(roster: Sequence[ClientSpec]) -> list[int]:
    """Positions of the clients that train with DP-SGD."""
    return [i for i, s in enumerate(roster) if s.privacy is not None]


def _names(roster: Sequence[ClientSpec], idx: Sequence[int]) -> str:
    names = [roster[i].name for i in idx]
    return ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")


def strategy_problem(cls: Any, params: Any, config: ExperimentConfig) -> str | None:
    """Why strategy ``cls`` (with ``params``) cannot run ``config``'s privacy settings, or ``None``."""
    from engine.privacy.server import averaging

    roster = config.roster()
    private = dp_clients(roster)
    if private and params is not None:
        for i in private:
            why = cls.private_payload(params, roster[i])
            if why:
                return f"{why} (client {_names(roster, [i])} trains with DP-SGD)"
    wanted = [
        w
        for w, on in (
            ("server-side DP", getattr(config, "server_dp", None) is not None),
            ("secure aggregation", getattr(config, "secure_aggregation", None) is not None),
        )
        if on
    ]
    if wanted and not averaging(cls):
        what = " and ".join(wanted)
        how = (
            "trains no shared model"
            if not cls.collaborates
            else "combines the clients' uploads its own way (not only their weighted sum)"
        )
        return (
            f"{cls.name} {how}; {what} cover{'s' if len(wanted) == 1 else ''} the strategies whose server "
            f"only averages models (fedavg, fedprox, fedper, lg_fedavg, fedavgm...)"
        )
    return None


def server_privacy(config: ExperimentConfig) -> bool:
    """Whether the design asks for server-side DP or secure aggregation."""
    return (
        getattr(config, "server_dp", None) is not None
        or getattr(config, "secure_aggregation", None) is not None
    )


def _params(cls: Any, config: ExperimentConfig) -> Any:
    """The strategy's parameters: the config's own when it is the chosen strategy, else defaults."""
    try:
        if cls.name == config.strategy.name:
            return cls.Params(**config.strategy.params())
        return cls.Params()
    except Exception:  # noqa: BLE001 - parameters are checked where the strategy is chosen
        return None


def compatibility(config: ExperimentConfig) -> dict[str, str | None]:
    """For every registered strategy: why it cannot run this design's privacy settings (``None``:
    it can, or the design has none)."""
    from engine.strategies import STRATEGIES

    if not dp_clients(config.roster()) and not server_privacy(config):
        return {name: None for name, _ in STRATEGIES.items()}
    return {name: strategy_problem(cls, _params(cls, config), config) for name, cls in STRATEGIES.items()}


def problems(
    config: ExperimentConfig, data: Any, n_train: Sequence[int] | None = None
) -> tuple[list[str], list[str]]:
    """Errors and warnings of the design's privacy settings on ``data`` (a loaded dataset).

    :param n_train: training records per client of the expanded roster (the split set-up would
        make), for the sampling rates and the calibration of target epsilons; ``None``: skipped.
    """
    roster = config.roster()
    private = dp_clients(roster)
    errors: list[str] = []
    warnings: list[str] = []
    if server_privacy(config):
        errors_s, warnings_s = server_problems(config)
        errors.extend(errors_s)
        warnings.extend(warnings_s)
    if not private:
        return errors, warnings
    from engine.privacy.accountant import INSTALL_HINT, available

    if not available():
        return [*errors, f"privacy: {INSTALL_HINT}"], warnings
    errors.extend(layer_problems(config, data, private))
    if n_train is not None:
        from engine.privacy.ledger import plan

        for i in private:
            spec = roster[i]
            n = int(n_train[i]) if i < len(n_train) else 0
            if n and spec.batch_size >= n:
                warnings.append(
                    f"privacy: {spec.name}'s batch size ({spec.batch_size}) covers all its {n} training "
                    f"records, so every step uses every record: no amplification by sampling, and a "
                    f"large epsilon; use a smaller batch size"
                )
            try:
                plan(spec, n, config.rounds)
            except ConfigError as exc:
                errors.append(f"privacy: {spec.name}: {exc}")
    prep = sorted({roster[i].preprocessing for i in private} - {"none"})
    statistics = getattr(config.data, "statistics", "federated")
    if prep and statistics != "client":
        where = (
            "from every client's training data (shared counts, sums and quantiles)"
            if statistics == "federated"
            else "from the whole file"
        )
        warnings.append(
            f"privacy: the {', '.join(prep)} preprocessing of the DP-SGD clients is fitted {where} "
            f"without noise, outside the epsilon reported; for the guarantee to cover everything, "
            f"fit it on each client's own data (preprocessing statistics: client) or use none"
        )
    return errors, warnings


def layer_problems(config: ExperimentConfig, data: Any, private: Sequence[int]) -> list[str]:
    """Each DP-SGD client's model built once for ``data``: layers DP-SGD cannot privatise, with
    what to use instead."""
    import torch

    from engine.errors import FedMosaicError
    from engine.models import build_model
    from engine.privacy.dpsgd import changes_buffers, unprivatisable

    roster = config.roster()
    seen: dict[str, list[str]] = {}
    out: list[str] = []
    for i in private:
        spec = roster[i]
        key = spec.model_key
        if key not in seen:
            try:
                with torch.random.fork_rng(devices=[]):
                    model = build_model(spec.model, data.input_spec, config.rep_dim, data.n_outputs)
            except (FedMosaicError, ValueError, RuntimeError, TypeError):
                seen[key] = []  # reported by the model checks
                continue
            found = unprivatisable(model)
            if not found:
                changed = changes_buffers(model, torch.zeros((2, *data.input_spec.shape)))
                found = (
                    [
                        f"{', '.join(changed)} (buffers a training pass updates from the data) would be "
                        f"published without noise: use layers without running statistics"
                    ]
                    if changed
                    else []
                )
            seen[key] = found
        if seen[key]:
            out.append(f"privacy: {spec.name} ({spec.arch}) cannot train with DP-SGD: {'; '.join(seen[key])}")
    return out


def server_problems(config: ExperimentConfig) -> tuple[list[str], list[str]]:
    """Errors and warnings of ``server_dp`` and ``secure_aggregation``."""
    errors: list[str] = []
    warnings: list[str] = []
    dp, sa = getattr(config, "server_dp", None), getattr(config, "secure_aggregation", None)
    # a robust defence with either is refused by engine/robustness/check.py (one message each)
    if dp is not None:
        from engine.privacy.accountant import INSTALL_HINT, available

        if not available():
            errors.append(f"privacy: {INSTALL_HINT}")
            return errors, warnings
        if config.selection == "deadline_aware":
            errors.append(
                "privacy: server-side DP samples clients at random with a known probability (what its "
                "accountant assumes); deadline-aware selection picks them by speed. Set the selection to "
                "random or all"
            )
        n = len(config.roster())
        delta = dp.delta if dp.delta is not None else 1.0 / n
        if delta > 0.01:
            warnings.append(
                f"privacy: server-side DP's delta is {delta:.3g} (1/N for {n} clients): a mechanism may "
                f"then reveal one client's update outright with that probability; set a delta of 1e-3 "
                f"or below for a meaningful guarantee"
            )
        try:
            from engine.privacy.accountant import noise_for
            from engine.privacy.server import update_noise

            rate = 1.0 if config.selection == "all" else config.fraction
            z = dp.noise_multiplier or noise_for(
                float(dp.target_epsilon), float(delta), float(rate), int(config.rounds), dp.accountant
            )
            if dp.clipping == "adaptive":
                count = dp.count_noise if dp.count_noise is not None else max(rate * n / 20, 2 * z)
                update_noise(z, count)
        except ConfigError as exc:
            errors.append(f"privacy: {exc}")
        if config.fraction * n < 5:
            warnings.append(
                f"privacy: server-side DP averages about {config.fraction * n:.3g} client(s) per round; "
                f"its noise (noise multiplier x clipping norm, divided by that count) will dominate the "
                f"update: DP-FedAvg needs many clients per round"
            )
    if sa is not None and len(config.roster()) < 2:
        errors.append("privacy: secure aggregation needs at least 2 clients (a sum of one reveals it)")
    return errors, warnings
