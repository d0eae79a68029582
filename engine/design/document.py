"""The design as a document: the plain config dict the pages edit (it may be invalid while the user
edits it), normalised, parsed, fingerprinted, and written to or read from a JSON/YAML file."""

from __future__ import annotations

import copy
import hashlib
import json
from typing import Any

from engine.access import confine
from engine.config import ExperimentConfig, StrategySpec, parse_config
from engine.config_file import read_document
from engine.errors import FedMosaicError
from engine.tracking.storage import default_data_dir

#: What a design without a strategy or a seed runs, as :class:`~engine.config.ExperimentConfig` declares.
DEFAULT_STRATEGY: str = StrategySpec.model_fields["name"].default
DEFAULT_SEED: int = ExperimentConfig.model_fields["seed"].default


def normalize(design: dict[str, Any]) -> dict[str, Any]:
    """The design with every default filled in when it is valid; otherwise returned unchanged."""
    try:
        return parse_config(design).model_dump(mode="json")
    except FedMosaicError:
        return copy.deepcopy(design)


def parse(design: dict[str, Any]) -> ExperimentConfig:
    """The validated config.

    :raises ConfigError: listing every problem as ``field.path: message``.
    """
    return parse_config(design)


def split_problems(message: str) -> list[str]:
    """A :class:`~engine.errors.ConfigError` message as its list of problems (one per field)."""
    message = message.removeprefix("invalid config: ")
    return [p.strip() for p in message.split("; ") if p.strip()] or [message]


def fingerprint(design: dict[str, Any]) -> str:
    """A short stable hash of a design (cache keys, widget keys)."""
    return hashlib.sha1(json.dumps(design, sort_keys=True, default=str).encode()).hexdigest()[:12]


def config_json(design: dict[str, Any]) -> str:
    """The design as an indented JSON document (what *Export JSON* downloads)."""
    return json.dumps(normalize(design), indent=2, sort_keys=False)


def config_from_json(text: str | bytes) -> dict[str, Any]:
    """Read an exported or hand-written config file (JSON or YAML) into a validated design;
    bounded and strict (:mod:`engine.config_file`).

    :raises ConfigError: not JSON/YAML, too large or deep, duplicate keys, not UTF-8, not an
        object, or invalid fields (names them).
    :raises AccessError: its ``data.path`` lies outside the allowed folders (:mod:`engine.access`).
    """
    config = parse_config(read_document(text, "the file"))
    confine(config.data, default_data_dir())  # a design from elsewhere reads only the allowed folders
    return config.model_dump(mode="json")
