"""Reading a config document — a file given to the CLI, an upload imported in the app — so that no
document can crash, hang or explode the process, and none is silently misread.

Bounds, checked before anything else is built from the text:

- :data:`MAX_BYTES` of text (a config with a 10,000-client roster is ~10 kB);
- :data:`MAX_DEPTH` levels of nesting (a config needs 6): JSON nested 100,000 deep is refused
  from a linear scan, before the recursive parser sees it;
- :data:`MAX_NODES` values, counted while YAML is composed (a large document stops early, so
  no document costs more than about a second) and again with aliases expanded on the node graph
  (shared nodes counted once per use): a "billion laughs" document is refused before it is
  constructed, as is a recursive alias.

Strict reading: a key given twice in one object (JSON or YAML) is refused, not resolved to the
last one; ``NaN``/``Infinity`` are refused; text that is not UTF-8 is named as such with the
offending byte; YAML tags beyond plain data (``!!python/object``...) are reported as tags.
Every refusal is a :class:`~engine.errors.ConfigError` whose message says what to change.
"""

from __future__ import annotations

import codecs
import json
import re
from pathlib import Path
from typing import Any, Literal

from engine.errors import ConfigError

MAX_BYTES = 1_000_000
"""Largest config document read (bytes)."""
MAX_DEPTH = 24
"""Deepest nesting of objects and lists (the config schema needs 6)."""
MAX_NODES = 20_000
"""Most values (objects, lists, scalars) in a document, aliases expanded (a roster of 800
different clients written out one by one)."""

_JSON_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')
_PLAIN_TAGS = {
    f"tag:yaml.org,2002:{t}"
    for t in (
        "map",
        "seq",
        "str",
        "int",
        "float",
        "bool",
        "null",
        "merge",
        "timestamp",
        "binary",
        "set",
        "omap",
        "pairs",
        "value",
    )
}


def _size_error(size: int, source: str) -> ConfigError:
    return ConfigError(
        f"{source} is {size / 1e6:.1f} MB; a config is at most {MAX_BYTES / 1e6:.0f} MB. "
        f"Large parameter lists do not belong in a config: put data in a CSV file"
    )


def decode(raw: bytes | str, source: str = "the file") -> str:
    """The document's text: UTF-8 (a byte-order mark dropped), or UTF-16 marked by its byte-order mark.

    :raises ConfigError: over :data:`MAX_BYTES`, or not UTF-8 (naming the first bad byte).
    """
    if isinstance(raw, str):
        if len(raw) > MAX_BYTES and len(raw.encode("utf-8", "surrogatepass")) > MAX_BYTES:
            raise _size_error(len(raw.encode("utf-8", "surrogatepass")), source)
        return raw.removeprefix("\ufeff")
    if len(raw) > MAX_BYTES:
        raise _size_error(len(raw), source)
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):  # Notepad's "Unicode": marked, unambiguous
        try:
            return raw.decode("utf-16")
        except UnicodeDecodeError:
            raise ConfigError(f"{source} starts like UTF-16 text but is damaged; save it as UTF-8") from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigError(
            f"{source} is not UTF-8 text (byte 0x{raw[exc.start]:02x} on line {line}); save it "
            f"as UTF-8 (in Excel or Notepad: Save as, encoding UTF-8)"
        ) from None


def read_document(
    raw: bytes | str, source: str = "the file", kind: Literal["json", "yaml", "auto"] = "auto"
) -> dict[str, Any]:
    """Parse one config document into plain dicts, lists and scalars, within the bounds above.

    :param kind: ``auto`` reads text starting with ``{`` as JSON and anything else as YAML.
    :raises ConfigError: too large, too deep, too many values, duplicate keys, not UTF-8, bad
        syntax (with line and column), a non-data YAML tag, or not one object.
    """
    text = decode(raw, source)
    if kind == "auto":
        kind = "json" if text.lstrip().startswith(("{", "[")) else "yaml"
    data = _json(text, source) if kind == "json" else _yaml(text, source)
    if not isinstance(data, dict):
        raise ConfigError(
            f"{source} must hold one object (an experiment config with data, clients and "
            f"strategy), not {_kind(data)}"
        )
    _check_shape(data, source)
    return data


def read_file(path: str | Path) -> dict[str, Any]:
    """Read a config file (``.yaml``/``.yml`` as YAML, anything else as JSON); see
    :func:`read_document`.

    :raises ConfigError: not a readable regular file, or any refusal of :func:`read_document`.
    """
    path = Path(path)
    try:
        if not path.is_file():
            raise ConfigError(
                f"cannot read config file {path}: "
                f"{'no such file' if not path.exists() else 'not a regular file'}"
            )
        with path.open("rb") as fh:
            raw = fh.read(MAX_BYTES + 1)
            if len(raw) > MAX_BYTES:
                raise _size_error(path.stat().st_size, str(path))
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from None
    kind = "yaml" if path.suffix.lower() in {".yaml", ".yml"} else "json"
    return read_document(raw, str(path), kind)


# ---- JSON ---------------------------------------------------------------------------------------
def _json_depth(text: str) -> int:
    """Deepest bracket nesting outside strings (a linear scan, no recursion)."""
    depth = deepest = 0
    for token in _JSON_TOKENS.finditer(text):
        ch = token.group()
        if ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    return deepest


def _no_duplicates(source: str):  # noqa: ANN202
    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in pairs:
            if key in out:
                raise ConfigError(
                    f'{source}: the key "{_short(key)}" appears twice in one object; keep one '
                    f"(JSON readers disagree on which one wins)"
                )
            out[key] = value
        return out

    return hook


def _no_constant(name: str) -> Any:
    raise ConfigError(f"{name} is not a number a config can hold; write a finite number")


def _json(text: str, source: str) -> Any:
    if _json_depth(text) > MAX_DEPTH:
        raise _depth_error(source)
    try:
        return json.loads(text, object_pairs_hook=_no_duplicates(source), parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"{source} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"
        ) from None
    except RecursionError:
        raise _depth_error(source) from None
    except ValueError as exc:  # an integer of more than 4,300 digits
        raise ConfigError(f"{source}: {exc}; write a shorter number") from None


# ---- YAML ---------------------------------------------------------------------------------------
def _loader_class():  # noqa: ANN202
    import yaml

    class StrictLoader(yaml.SafeLoader):
        """SafeLoader that stops composing past :data:`MAX_NODES` values or :data:`MAX_DEPTH`
        levels (before a large document costs seconds), and refuses duplicate keys (explicit
        ones; ``<<`` merges may override)."""

        _nodes = 0
        _depth = 0

        def compose_node(self, parent, index):  # noqa: ANN001, ANN202
            self._nodes += 1
            self._depth += 1
            try:
                if self._nodes > MAX_NODES:
                    raise _count_error(self._source)
                if self._depth > MAX_DEPTH:
                    raise _depth_error(self._source)
                return super().compose_node(parent, index)
            finally:
                self._depth -= 1

        def construct_mapping(self, node, deep=False):  # noqa: ANN001, ANN202
            seen: set[Any] = set()
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = key_node.value if isinstance(key_node, yaml.ScalarNode) else id(key_node)
                if key in seen:
                    raise ConfigError(
                        f'{self._source}: the key "{_short(str(key))}" appears twice in one '
                        f"mapping (line {key_node.start_mark.line + 1}); keep one"
                    )
                seen.add(key)
            return super().construct_mapping(node, deep=deep)

    return StrictLoader


def _yaml(text: str, source: str) -> Any:
    import yaml

    try:
        loader = _loader_class()(text)
    except yaml.YAMLError as exc:  # a character YAML does not allow (NUL, other control characters)
        raise ConfigError(f"{source} is not valid YAML: {_yaml_problem(exc)}") from None
    loader._source = source  # noqa: SLF001
    try:
        try:
            node = loader.get_single_node()
        except RecursionError:
            raise _depth_error(source) from None
        except yaml.MarkedYAMLError as exc:
            raise ConfigError(f"{source} is not valid YAML: {_yaml_problem(exc)}") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"{source} is not valid YAML: {exc}") from None
        if node is None:
            return None
        _check_graph(node, source)
        try:
            return loader.construct_document(node)
        except yaml.MarkedYAMLError as exc:
            raise ConfigError(f"{source}: {_yaml_problem(exc)}") from None
    finally:
        loader.dispose()


def _yaml_problem(exc: Any) -> str:
    if not hasattr(exc, "problem_mark"):  # a ReaderError: a character YAML does not allow
        return (
            f"character #x{getattr(exc, 'character', 0):04x} at position {getattr(exc, 'position', 0)} is "
            "not allowed"
        )
    mark = exc.problem_mark or exc.context_mark
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
    return f"{exc.problem or exc.context or 'unreadable'}{where}"


def _check_graph(root: Any, source: str) -> None:
    """Refuse non-data tags, recursive aliases, and documents whose alias expansion exceeds the
    bounds, computing sizes on the node graph (each distinct node once)."""

    size: dict[int, int] = {}
    depth: dict[int, int] = {}
    state: dict[int, int] = {}  # 1: on the current path, 2: done
    stack: list[tuple[Any, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if children_done:
            kids = _children(node)
            size[key] = 1 + sum(size[id(k)] for k in kids)
            depth[key] = 1 + max((depth[id(k)] for k in kids), default=0)
            state[key] = 2
            if size[key] > MAX_NODES:
                raise ConfigError(
                    f"{source} expands to more than {MAX_NODES:,} values (YAML aliases repeat "
                    f"what they point to); write the config without nested aliases"
                )
            if depth[key] > MAX_DEPTH:
                raise _depth_error(source)
            continue
        if state.get(key) == 2:
            continue
        if state.get(key) == 1:
            raise ConfigError(
                f"{source}: a YAML alias refers to a mapping or list that contains it "
                f"(line {node.start_mark.line + 1}); a config cannot be recursive"
            )
        tag = node.tag or ""
        if tag not in _PLAIN_TAGS:
            name = tag.removeprefix("tag:yaml.org,2002:")
            shown = f"!!{name}" if name != tag else tag
            why = "asks to build a Python object" if name.startswith("python/") else "is not a plain value"
            raise ConfigError(
                f"{source}: the YAML tag {_short(shown)} (line {node.start_mark.line + 1}) {why}; "
                f"a config holds plain values only (numbers, text, lists, mappings)"
            )
        state[key] = 1
        stack.append((node, True))
        for kid in _children(node):
            stack.append((kid, False))


def _children(node: Any) -> list[Any]:
    import yaml

    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


# ---- shape --------------------------------------------------------------------------------------
def _check_shape(data: Any, source: str) -> None:
    """Depth and value-count bounds on the constructed document (iterative)."""
    count = 0
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        value, level = stack.pop()
        count += 1
        if level > MAX_DEPTH:
            raise _depth_error(source)
        if count > MAX_NODES:
            raise _count_error(source)
        if isinstance(value, dict):
            stack.extend((v, level + 1) for v in value.values())
        elif isinstance(value, (list, tuple)):
            stack.extend((v, level + 1) for v in value)


def _count_error(source: str) -> ConfigError:
    return ConfigError(
        f"{source} holds more than {MAX_NODES:,} values; a config is much smaller (a roster "
        f'repeats a client with "count" instead of listing it)'
    )


def _depth_error(source: str) -> ConfigError:
    return ConfigError(
        f"{source} is nested more than {MAX_DEPTH} levels deep; a config needs about 6 "
        f"(experiment > clients > client > model)"
    )


def _short(text: str, n: int = 40) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def _kind(value: Any) -> str:
    return {
        list: "a list",
        str: "text",
        int: "a number",
        float: "a number",
        bool: "true/false",
        type(None): "nothing",
    }.get(type(value), type(value).__name__)
