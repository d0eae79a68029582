"""Checks that need the data: can each architecture read the dataset, which strategies can combine
this roster (the compatibility check shown before launch), will the data split work."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.config import ExperimentConfig
from engine.data import load_dataset
from engine.data.federation import partition_params
from engine.errors import CompatibilityError, ConfigError, FedMosaicError
from engine.models import check_reads
from engine.strategies import STRATEGIES
from engine.tracking.storage import default_data_dir


@dataclass
class Report:
    """What :func:`validate` found: fatal ``errors`` and advisory ``warnings``."""

    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    compatible: dict[str, str | None] = field(default_factory=dict)
    n_train: list[int] | None = None
    """Training records per client of the split set-up would make (:func:`split_problems`)."""

    @property
    def ok(self) -> bool:
        return not self.errors


FAMILY_ORDER = ("baseline", "parameter sharing", "knowledge sharing", "knowledge distillation", "reference")


def _order(name: str) -> tuple[int, str]:
    family = STRATEGIES.get(name).family
    return (FAMILY_ORDER.index(family) if family in FAMILY_ORDER else len(FAMILY_ORDER), name)


def _reasons(config: ExperimentConfig, task: str) -> dict[str, str | None]:
    from engine.privacy.checks import compatibility as privacy_compatibility
    from engine.robustness.check import strategy_reason

    roster = config.roster()
    has_public = config.data.public_fraction > 0
    private = privacy_compatibility(config)  # what each strategy's uploads reveal (engine/privacy)
    return {
        name: cls.incompatibility(roster, task, has_public)
        or private.get(name)
        or strategy_reason(cls, config)
        for name, cls in STRATEGIES.items()
    }


def compatibility(config: ExperimentConfig, task: str) -> dict[str, str | None]:
    """For every registered strategy: ``None`` if it can run this roster on this task, else why
    not, naming the clients involved and ending with the collaborative strategies that can
    (``"...: fedavg needs one architecture; try fedavg_by_arch, lg_fedavg, ..."``).

    :param task: ``classification`` or ``regression`` (the dataset's).
    """
    reasons = _reasons(config, task)
    hint = suggest(reasons)
    return {name: (why if why is None else f"{why}{hint}") for name, why in reasons.items()}


def compatibility_matrix(config: ExperimentConfig, task: str) -> dict[str, dict[str, Any]]:
    """The full matrix for the pages: strategy -> ``{ok, reason, caveat, family, needs_public,
    has_public, mixed_architectures, description}``, collaborative strategies first.

    ``reason`` is why it cannot run (``None`` when ``ok``); ``caveat`` is an advisory note on a
    roster it can run (e.g. a client whose model nobody else uses shares with nobody).
    """
    roster = config.roster()
    has_public = config.data.public_fraction > 0
    reasons = compatibility(config, task)
    out: dict[str, dict[str, Any]] = {}
    for name in sorted(reasons, key=_order):
        cls = STRATEGIES.get(name)
        ok = reasons[name] is None
        out[name] = {
            "ok": ok,
            "reason": reasons[name],
            "caveat": cls.caveat(roster, task, has_public) if ok else None,
            "family": cls.family,
            "needs_public": cls.needs_public,
            "has_public": has_public,
            "mixed_architectures": not cls.same_architecture,
            "description": cls.description,
        }
    return out


def suggest(compatible: dict[str, str | None]) -> str:
    """'; try a, b, c' for the collaborative strategies that can run (baselines and parameter
    sharing first), or '' when none can."""
    names = sorted(
        (
            n
            for n, why in compatible.items()
            if why is None and STRATEGIES.get(n).collaborates and STRATEGIES.get(n).family != "reference"
        ),
        key=_order,
    )
    return f"; try {', '.join(names)}" if names else ""


def validate(config: ExperimentConfig, root: Path | None = None) -> Report:
    """Every check that can be made before anything trains. Never raises for user mistakes:
    they are listed in the report."""
    report = Report()
    root = root or default_data_dir()
    if config.tracking is not None and config.tracking.mlflow is not None:
        import importlib.util

        if importlib.util.find_spec("mlflow") is None:
            report.errors.append(
                "tracking.mlflow: mlflow is not installed; install the mlflow extra "
                "(pip install 'fedmosaic[mlflow]') or remove tracking.mlflow"
            )
    try:
        data = load_dataset(config.data, root)
    except FedMosaicError as exc:
        report.errors.append(f"data: {exc}")
        return report
    try:
        partition_params(config.data)
    except ConfigError as exc:
        report.errors.append(str(exc))
    for i, spec in enumerate(config.clients):
        try:
            check_reads(spec.model, data.input_spec)
        except ConfigError as exc:
            report.errors.append(f"clients.{i} ({spec.name}): {exc}")
    if config.primary_metric != "auto":
        from engine.core.primary import choose_primary

        try:
            choose_primary(config.primary_metric, data.task)
        except ValueError as exc:
            report.errors.append(f"primary metric: {exc}")
    if config.data.statistics == "centralized":
        report.warnings.append(
            "data: centralized statistics (data.statistics): every site's preprocessing uses the "
            "whole file, test rows included - not possible in a real federation; a reference only"
        )
    report.compatible = compatibility(config, data.task)
    chosen = STRATEGIES.get(config.strategy.name)
    why = report.compatible.get(config.strategy.name) or chosen.check_params(
        chosen.Params(**config.strategy.params()), data.input_spec
    )
    if why is not None:
        report.errors.append(f"strategy: {why}")
    else:
        note = STRATEGIES.get(config.strategy.name).caveat(
            config.roster(), data.task, config.data.public_fraction > 0
        )
        if note:
            report.warnings.append(f"strategy {config.strategy.name}: {note}")
    if config.executor == "ray":
        from engine.executors.ray import INSTALL_HINT, available

        if not available():
            report.errors.append(f"executor: {INSTALL_HINT}")
    roster = config.roster()
    late = [s.name for s in roster if s.join_round > config.rounds]
    if late:
        report.warnings.append(
            f"{len(late)} client(s) join after the last round and never train: {', '.join(late[:5])}"
        )
    report.errors.extend(model_problems(config, data))
    from engine.robustness.check import problems as robustness_problems

    errors, warnings = robustness_problems(config, data.task, data.n_outputs, data.input_spec)
    report.errors.extend(errors)
    report.warnings.extend(warnings)
    split = split_problems(config, root)
    report.errors.extend(split.errors)
    report.warnings.extend(split.warnings)
    if not split.errors:
        from engine.privacy.checks import problems as privacy_problems

        errors, warnings = privacy_problems(config, data, split.n_train)
        report.errors.extend(errors)
        report.warnings.extend(warnings)
    report.warnings.extend(hardware_warnings(config, data))
    return report


def model_problems(config: ExperimentConfig, data: Any) -> list[str]:
    """Every distinct model of the roster built once for this data (a forward pass, as set-up
    does): a model that cannot take this input is reported here, not when the run starts."""
    from engine.hardware.devices import estimate_memory

    out: list[str] = []
    seen: set[str] = set()
    for i, spec in enumerate(config.clients):
        key = repr(sorted(spec.model.items()))
        if key in seen:
            continue
        seen.add(key)
        try:
            estimate_memory(
                spec.model,
                data.input_spec,
                config.rep_dim,
                data.n_outputs,
                spec.batch_size,
                spec.optimizer,
                spec.momentum,
            )
        except FedMosaicError as exc:
            out.append(f"clients.{i} ({spec.name}): {exc}")
        except (ValueError, RuntimeError, TypeError, IndexError) as exc:
            out.append(
                f"clients.{i} ({spec.name}): model '{spec.arch}' cannot be built for input "
                f"{data.input_spec} ({type(exc).__name__}: {str(exc)[:200]}); change its size knobs "
                f"or pick another architecture"
            )
    return out


def split_problems(config: ExperimentConfig, root: Path) -> Report:
    """The split set-up would make, computed the same way without building anything: sample
    counts after ``max_samples`` and the held-out sets, a natural split's values against the
    roster, and clients left with no training or no local test sample."""
    from engine.data import partition_preview

    out = Report()
    roster = config.roster()
    try:
        preview = partition_preview(
            config.data, len(roster), [c.data_share for c in roster], config.seed, root
        )
    except FedMosaicError as exc:
        out.errors.append(f"data: {exc}")
        return out
    clients = preview["clients"]
    out.n_train = [int(c["train"]) for c in clients]
    no_train = [roster[i].name for i, c in enumerate(clients) if c["train"] == 0]
    if no_train:
        out.errors.append(
            f"data: {len(no_train)} client(s) would get no training sample ({_names(no_train)}); "
            f"use fewer clients, a larger dataset or a larger max samples"
        )
    no_test = [roster[i].name for i, c in enumerate(clients) if c["test"] == 0]
    if config.data.test_fraction > 0 and no_test:
        smallest = min(c["size"] for c in clients)
        if smallest < 2:
            fix = (
                "a client needs at least 2 samples, one to train on and one to test: use fewer clients, a "
                "larger dataset or a larger max samples"
            )
        elif config.data.test_fraction >= 0.5:
            fix = (
                f"lower the test fraction (data.test_fraction; 0.2 is usual): "
                f"{config.data.test_fraction:g} leaves nothing to train on"
            )
        else:
            fix = "raise the test fraction (data.test_fraction) or give them more samples"
        out.errors.append(
            f"data: {len(no_test)} client(s) would have no local test sample "
            f"({_names(no_test)}; the smallest client holds {smallest} sample(s)); {fix}"
        )
    elif config.data.test_fraction >= 0.5:
        fewest = min(c["train"] for c in clients)
        out.warnings.append(
            f"data: the test fraction {config.data.test_fraction:g} keeps most of each client's "
            f"data for testing; the smallest client trains on {fewest} sample(s)"
        )
    elif config.data.test_fraction == 0:
        out.warnings.append(
            "data: the test fraction is 0, so clients keep no local test split; only the "
            "global test set is scored"
        )
    return out


def _names(names: list[str]) -> str:
    return ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")


def hardware_warnings(config: ExperimentConfig, data: Any) -> list[str]:
    """Memory fit of the roster on its real devices and advice on the simulated hardware."""
    from engine.hardware.devices import memory_warnings
    from engine.hardware.outlook import clock_warnings

    per_client = len(data) // max(1, len(config.roster()))
    return memory_warnings(config, data.input_spec, data.n_outputs, per_client) + clock_warnings(
        config, data.input_spec, data.n_outputs, per_client
    )


def check(config: ExperimentConfig, root: Path | None = None) -> Report:
    """:func:`validate`, raising :class:`CompatibilityError`/:class:`ConfigError` on the first error."""
    report = validate(config, root)
    if report.errors:
        first = report.errors[0]
        cls = CompatibilityError if first.startswith("strategy:") else ConfigError
        raise cls("; ".join(report.errors))
    return report
