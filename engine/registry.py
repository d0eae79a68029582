"""Name -> class registries filled by a decorator (the timm pattern).

Every pluggable thing in FedMosaic (architectures, strategies, datasets, partitioners, device
tiers, executors) lives in a :class:`Registry`. Adding one is one new file with one decorator; the
catalog, the config validation and the pages read the registries, so nothing else changes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from engine.errors import UnknownNameError

T = TypeVar("T")


class Registry(Generic[T]):
    """A dict of named entries filled by :meth:`register`.

    :param kind: what the entries are ("architecture", "strategy", ...), used in error messages.
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: add the decorated object under ``name`` and set its ``name`` attribute."""

        def add(obj: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.kind} '{name}' is registered twice")
            self._entries[name] = obj
            try:
                obj.name = name  # type: ignore[attr-defined]
            except (AttributeError, TypeError):
                pass
            return obj

        return add

    def get(self, name: str) -> T:
        """Return the entry called ``name``.

        :raises UnknownNameError: naming the valid choices.
        """
        try:
            return self._entries[name]
        except KeyError:
            raise UnknownNameError(self.kind, name, self.names()) from None

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._entries)

    def items(self) -> Iterator[tuple[str, T]]:
        """``(name, entry)`` pairs sorted by name."""
        for name in self.names():
            yield name, self._entries[name]

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __len__(self) -> int:
        return len(self._entries)
