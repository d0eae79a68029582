"""Named errors. User mistakes raise a :class:`FedMosaicError` subclass whose message says what to
change; the CLI prints it on one line and the pages show it with ``st.error``. Anything else is a
bug and keeps its traceback."""

from __future__ import annotations


def validation_problems(
    exc: Exception, prefix: str = "", empty: str = "", clean: bool = False, model: type | None = None
) -> list[str]:
    """A pydantic ``ValidationError`` as ``field.path: message`` lines. ``prefix`` goes before
    every path; ``empty`` names a whole-model error; ``clean`` drops pydantic's "Value error, "
    prefix from our own validators' messages. ``model``: the validated model class; an unknown
    name (a typo) is then reported with the valid names at that place."""
    out = []
    for err in exc.errors():  # type: ignore[attr-defined]
        loc = prefix + ".".join(str(p) for p in err["loc"]) if err["loc"] else prefix.rstrip(".") or empty
        msg = err["msg"]
        if clean:
            msg = msg.removeprefix("Value error, ").removeprefix("Assertion failed, ")
        if err.get("type") == "extra_forbidden" and err["loc"]:
            valid = known_names(model, err["loc"][:-1]) if model is not None else None
            msg = "unknown name" + (
                f"; valid names: {', '.join(valid)}"
                if valid
                else "; nothing can be set here"
                if valid == []
                else ""
            )
        out.append(f"{loc}: {msg}")
    return out


def known_names(model: type, loc: tuple | list) -> list[str] | None:
    """The field names of the pydantic model found by following ``loc`` (field names, list
    indices, dict keys) from ``model``; ``None`` where the path leads elsewhere."""
    import types
    import typing

    from pydantic import BaseModel

    def unwrap(t: object) -> object:
        origin = typing.get_origin(t)
        if origin is typing.Annotated:
            return unwrap(typing.get_args(t)[0])
        if origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(t) if a is not type(None)]
            models = [a for a in args if isinstance(a, type) and issubclass(a, BaseModel)]
            return unwrap((models or args)[0]) if (models or args) else t
        return t

    t: object = model
    for part in loc:
        t = unwrap(t)
        if isinstance(t, type) and issubclass(t, BaseModel):
            field = t.model_fields.get(str(part))
            if field is None:
                return None
            t = field.annotation
            continue
        origin, args = typing.get_origin(t), typing.get_args(t)
        if origin in (list, tuple, set, frozenset) and isinstance(part, int) and args:
            t = args[0]
        elif origin is dict and len(args) == 2:
            t = args[1]
        else:
            return None
    t = unwrap(t)
    if isinstance(t, type) and issubclass(t, BaseModel):
        return list(t.model_fields)
    return None


def printable(text: str) -> str:
    """``text`` on one line with every non-printable character (line breaks, escape sequences,
    bidirectional overrides) written as its escape, so user input quoted in a message can neither
    break it across lines nor act on a terminal."""
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)


class FedMosaicError(Exception):
    """Base class of every error caused by user input or the environment, not by a bug. Its
    message is one line of printable text (:func:`printable`): it quotes user input."""

    def __init__(self, *args: object) -> None:
        if len(args) == 1 and isinstance(args[0], str):
            args = (printable(args[0]),)
        super().__init__(*args)


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


class RunStateError(FedMosaicError):
    """The run's status does not allow this (resume a finished run, delete a run another process
    is running); the message says what to do instead."""


class CancelledError(FedMosaicError):
    """Raised inside a run when its cancel event is set; the run ends as ``cancelled``."""


class ModelNotFoundError(FedMosaicError):
    """A run keeps no such model (not finished yet, another client's name, deleted files)."""
