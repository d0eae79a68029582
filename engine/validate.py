"""Checks that need the data: can each architecture read the dataset, which strategies can combine
this roster (the compatibility check shown before launch), will the data split work."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from engine.config import ExperimentConfig
from engine.data import load_dataset
from engine.data.federation import partition_params
from engine.errors import CompatibilityError, ConfigError, FedMosaicError
from engine.models import check_reads
from engine.storage import default_data_dir
from engine.strategies import STRATEGIES


@dataclass
class Report:
    """What :func:`validate` found: fatal ``errors`` and advisory ``warnings``."""

    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    compatible: dict[str, str | None] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.errors


def compatibility(config: ExperimentConfig, task: str) -> dict[str, str | None]:
    """For every registered strategy: ``None`` if it can run this roster, else why not."""
    roster = config.roster()
    has_public = config.data.public_fraction > 0
    return {name: cls.incompatibility(roster, task, has_public) for name, cls in STRATEGIES.items()}


def suggest(compatible: dict[str, str | None]) -> str:
    """'try a, b, c' for the strategies that can run (collaborative ones first)."""
    names = [n for n, why in compatible.items() if why is None and n not in ("local", "centralized")]
    return f"; try {', '.join(names)}" if names else ""


def validate(config: ExperimentConfig, root: Path | None = None) -> Report:
    """Every check that can be made before anything trains. Never raises for user mistakes:
    they are listed in the report."""
    report = Report()
    root = root or default_data_dir()
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
    report.compatible = compatibility(config, data.task)
    why = report.compatible.get(config.strategy.name)
    if why is not None:
        report.errors.append(f"strategy: {why}{suggest(report.compatible)}")
    n = len(config.roster())
    late = [s.name for s in config.roster() if s.join_round > config.rounds]
    if late:
        report.warnings.append(f"{len(late)} client(s) join after the last round and never train: "
                               f"{', '.join(late[:5])}")
    if n > len(data):
        report.errors.append(f"{n} clients but the dataset has {len(data)} samples")
    return report


def check(config: ExperimentConfig, root: Path | None = None) -> Report:
    """:func:`validate`, raising :class:`CompatibilityError`/:class:`ConfigError` on the first error."""
    report = validate(config, root)
    if report.errors:
        first = report.errors[0]
        cls = CompatibilityError if first.startswith("strategy:") else ConfigError
        raise cls("; ".join(report.errors))
    return report
