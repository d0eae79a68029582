"""Named errors. User mistakes raise a :class:`FedMosaicError` subclass whose message says what to
change; the CLI prints it on one line and the pages show it with ``st.error``. Anything else is a
bug and keeps its traceback."""

from __future__ import annotations


def validation_problems(exc: Exception, prefix: str = "", empty: str = "", clean: bool = False) -> list[str]:
    """A pydantic ``ValidationError`` as ``field.path: message`` lines. ``prefix`` goes before
    every path; ``empty`` names a whole-model error; ``clean`` drops pydantic's "Value error, "
    prefix from our own validators' messages."""
    out = []
    for err in exc.errors():  # type: ignore[attr-defined]
        loc = prefix + ".".join(str(p) for p in err["loc"]) if err["loc"] else prefix.rstrip(".") or empty
        msg = err["msg"]
        if clean:
            msg = msg.removeprefix("Value error, ").removeprefix("Assertion failed, ")
        out.append(f"{loc}: {msg}")
    return out


class FedMosaicError(Exception):
    """Base class of every error caused by user input or the environment, not by a bug."""


class ConfigError(FedMosaicError):
    """The experiment config is invalid; the message names the field and the fix."""


class UnknownNameError(ConfigError):
    """A registry name (architecture, strategy, dataset, ...) that does not exist."""

    def __init__(self, kind: str, name: str, valid: list[str]) -> None:
        self.kind, self.name, self.valid = kind, name, valid
        super().__init__(f"unknown {kind} '{name}'; valid {kind} names: {', '.join(valid)}")


class DataError(FedMosaicError):
    """The data cannot be loaded or split as asked; the message names the column/row and the fix."""


class CompatibilityError(ConfigError):
    """The chosen strategy cannot combine the chosen clients' models or data."""


class StorageError(FedMosaicError):
    """The database or data directory cannot be written (full disk, permissions)."""


class RunNotFoundError(FedMosaicError):
    """No run with that id in the database."""


class CancelledError(FedMosaicError):
    """Raised inside a run when its cancel event is set; the run ends as ``cancelled``."""
