"""Property-based fuzzing (Hypothesis) of everything a user hands FedMosaic: config documents
(JSON/YAML text and bytes: bad types, sizes, encodings, nesting, duplicate keys, aliases, control
characters), near-valid configs mutated field by field, and table files. The invariants:

- the answer is a result or a :class:`~engine.errors.FedMosaicError` with a message, never another
  exception (a traceback);
- no example takes longer than its deadline (the bounds of :mod:`engine.config_file` hold);
- a launch that is refused leaves no row; an accepted one leaves exactly one, complete;
- text written for a spreadsheet or a terminal carries no formula or control character.

Reproducible and bounded: ``derandomize=True`` (the examples are a function of the test), no
example database, and ``max_examples``/``deadline`` chosen per property so the module takes a few
seconds on two loaded cores (the deadlines are ~20x the typical time per example: generous for a
busy machine, far below a hang).
"""

from __future__ import annotations

import json
import string
from datetime import timedelta

import pytest
import yaml
from conftest import digits_config
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from engine.config import parse_config
from engine.config_file import MAX_BYTES
from engine.design import document, schema
from engine.errors import FedMosaicError
from engine.sanitize import FORMULA_START, csv_text, markdown_plain, terminal_safe
from engine.tracking.storage import Store

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def fuzz(max_examples: int, deadline_s: float):  # noqa: ANN201
    return settings(
        max_examples=max_examples,
        deadline=timedelta(seconds=deadline_s),
        derandomize=True,
        database=None,
        print_blob=True,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.function_scoped_fixture,
            HealthCheck.data_too_large,
        ],
    )


CONFIG_KEYS = [
    "name",
    "seed",
    "rounds",
    "fraction",
    "data",
    "clients",
    "strategy",
    "executor",
    "executor_options",
    "dataset",
    "partition",
    "options",
    "method",
    "alpha",
    "model",
    "arch",
    "count",
    "lr",
    "epochs",
    "batch_size",
    "workers",
    "test_fraction",
    "max_samples",
    "path",
    "tiers",
    "tier",
    "device",
    "columns",
    "window",
    "deadline",
]
NASTY_TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=24) | st.sampled_from(
    [
        "=1+1",
        "@SUM(A1)",
        "-2+3",
        "+x",
        "\t=x",
        "\r=x",
        "\x1b[2J",
        "![x](http://e.test/p.png)",
        "../../etc/passwd",
        "/etc/passwd",
        "NaN",
        "1e999",
        "\u202e",
        "",
        " ",
        "\x00",
    ]
)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(10**30), 10**30)
    | st.floats(allow_nan=True, allow_infinity=True)
    | NASTY_TEXT
)
KEYS = st.sampled_from(CONFIG_KEYS) | NASTY_TEXT
VALUES = st.recursive(
    SCALARS, lambda kids: st.lists(kids, max_size=4) | st.dictionaries(KEYS, kids, max_size=5), max_leaves=25
)
DOCUMENTS = st.dictionaries(KEYS, VALUES, max_size=8)


# ---- near-valid configs, mutated ----------------------------------------------------------------
PATHS = [
    "name",
    "seed",
    "rounds",
    "fraction",
    "eval_every",
    "rep_dim",
    "executor",
    "executor_options",
    "checkpoint_every",
    "data",
    "data.dataset",
    "data.partition",
    "data.partition.alpha",
    "data.partition.method",
    "data.test_fraction",
    "data.global_test_fraction",
    "data.public_fraction",
    "data.max_samples",
    "data.options",
    "data.path",
    "clients",
    "clients.0",
    "clients.0.count",
    "clients.0.model",
    "clients.0.model.arch",
    "clients.0.model.hidden",
    "clients.0.lr",
    "clients.0.batch_size",
    "clients.0.tier",
    "clients.0.name",
    "strategy",
    "strategy.name",
    "strategy.mu",
    "tiers",
    "deadline",
]


def mutate(config: dict, path: str, value) -> dict:  # noqa: ANN001
    """``config`` with the value at dotted ``path`` replaced (a path through something that is no
    longer a dict or a long enough list is left alone)."""
    node = config
    parts = path.split(".")
    for part in parts:
        if part is parts[-1]:
            break
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                return config
            node = node[int(part)]
        elif isinstance(node, dict):
            node = node.setdefault(part, {})
        else:
            return config
    last = parts[-1]
    if isinstance(node, list) and last.isdigit() and int(last) < len(node):
        node[int(last)] = value
    elif isinstance(node, dict):
        node[last] = value
    return config


PLAUSIBLE = st.sampled_from(
    [
        0,
        1,
        2,
        3,
        5,
        0.1,
        0.5,
        0.99,
        1.0,
        -1,
        2**31,
        10**9,
        "",
        "x",
        "threads",
        "vectorized",
        "ray",
        "natural",
        "iid",
        "dirichlet",
        "csv",
        "traffic",
        "shapes",
        "wine",
        "fedprox",
        "fedavg_by_arch",
        "cnn",
        "mlp",
        "gru",
        {"workers": 2},
        {"workers": 0},
        {"workers": "abc"},
        {"method": "natural", "column": "city"},
        {"method": "dirichlet", "alpha": 0.3},
        {"arch": "cnn", "channels": 8},
        {"name": "fedprox", "mu": 0.1},
        [{"name": "a", "count": 2}],
        [],
        {},
    ]
)
VALID_CHANGES = st.sampled_from(
    [
        ("rounds", 1),
        ("rounds", 3),
        ("seed", 7),
        ("fraction", 0.5),
        ("eval_every", 2),
        ("checkpoint_every", 0),
        ("data.partition", {"method": "iid"}),
        ("data.partition.alpha", 0.1),
        ("data.test_fraction", 0.3),
        ("data.max_samples", 300),
        ("data.dataset", "wine"),
        ("data.public_fraction", 0.1),
        ("clients.0.count", 3),
        ("clients.0.model", {"arch": "cnn", "channels": 8}),
        ("clients.0.lr", 0.01),
        ("clients.0.batch_size", 8),
        ("clients.0.optimizer", "adam"),
        ("strategy", {"name": "fedprox", "mu": 0.1}),
        ("strategy", {"name": "fedavg_by_arch"}),
        ("executor", "vectorized"),
        ("executor", "threads"),
        ("executor_options", {}),
        ("name", '=HYPERLINK("http://e.test")'),
        ("name", "![x](http://e.test/p.png)"),
        ("clients.0.name", "@SUM(A1)"),
        ("clients.0.tier", "laptop-cpu"),
    ]
)
MUTATIONS = st.lists(
    VALID_CHANGES | st.tuples(st.sampled_from(PATHS), PLAUSIBLE | PLAUSIBLE | VALUES), min_size=1, max_size=2
)


def _yaml_bomb(width: int, levels: int) -> str:
    lines = [
        "name: x",
        "clients: [{name: c}]",
        "data:",
        "  options:",
        f"    l0: &l0 [{', '.join(['x'] * width)}]",
    ]
    for i in range(1, levels):
        lines.append(f"    l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * width)}]")
    return "\n".join(lines) + "\n"


@st.composite
def raw_documents(draw) -> bytes | str:  # noqa: ANN001
    """Config files as a user might upload them: valid or not, any encoding, truncated, padded,
    nested, duplicated, aliased."""
    kind = draw(
        st.sampled_from(
            [
                "near-valid",
                "near-valid",
                "json",
                "yaml",
                "bytes",
                "nested",
                "duplicate",
                "bomb",
                "huge",
                "truncated",
            ]
        )
    )
    doc = draw(DOCUMENTS)
    if kind == "near-valid":
        config = digits_config()
        for path, value in draw(MUTATIONS)[: draw(st.integers(0, 2))]:
            config = mutate(config, path, value)
        text = (
            json.dumps(config, allow_nan=True)
            if draw(st.booleans())
            else yaml.safe_dump(config, allow_unicode=True)
        )
    elif kind == "json":
        text = json.dumps(doc, allow_nan=True, ensure_ascii=draw(st.booleans()))
    elif kind == "yaml":
        text = yaml.safe_dump(doc, allow_unicode=draw(st.booleans()))
    elif kind == "bytes":
        return draw(st.binary(max_size=300))
    elif kind == "nested":
        depth = draw(st.integers(10, 20_000))
        text = "[" * depth + "]" * depth if draw(st.booleans()) else '{"a":' * depth + "1" + "}" * depth
    elif kind == "duplicate":
        key = draw(st.sampled_from(CONFIG_KEYS))
        text = json.dumps(doc)[:-1] + ("," if doc else "") + f'"{key}": 1, "{key}": 2}}'
    elif kind == "bomb":
        text = _yaml_bomb(draw(st.integers(2, 12)), draw(st.integers(2, 9)))
    elif kind == "huge":
        text = json.dumps({"name": "x", "pad": "y" * draw(st.integers(MAX_BYTES - 100, MAX_BYTES + 100))})
    else:
        full = json.dumps(digits_config())
        text = full[: draw(st.integers(0, len(full)))]
    encoding = draw(
        st.sampled_from(["utf-8", "utf-8", "utf-8", "utf-8-sig", "utf-16", "latin-1", "cp1252", "str"])
    )
    if encoding == "str":
        return text
    return text.encode(encoding, errors="replace")


@fuzz(max_examples=150, deadline_s=5)
@given(raw_documents())
def test_any_config_document_is_a_design_or_a_clear_error(raw):
    try:
        design = document.config_from_json(raw)
    except FedMosaicError as exc:
        assert str(exc) and str(exc).isprintable()
        event(f"refused: {type(exc).__name__}")
        return
    event("accepted")
    assert parse_config(design).model_dump(mode="json") == design


@fuzz(max_examples=80, deadline_s=5)
@given(raw_documents(), st.sampled_from([".json", ".yaml", ".yml", ".txt"]))
def test_any_config_file_reads_or_fails_clearly(tmp_path_factory, raw, suffix):
    path = tmp_path_factory.mktemp("cfg") / f"config{suffix}"
    path.write_bytes(raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw)
    from engine.config import load_config

    try:
        load_config(path)
    except FedMosaicError as exc:
        assert str(exc)


@fuzz(max_examples=120, deadline_s=5)
@given(MUTATIONS)
def test_a_mutated_config_parses_or_names_the_field(mutations):
    config = digits_config()
    for path, value in mutations:
        config = mutate(config, path, value)
    try:
        parse_config(config)
    except FedMosaicError as exc:
        assert str(exc).startswith(("invalid config:", "strategy", "model", "unknown", "executor")), str(exc)
        assert str(exc).isprintable()
        event("refused")
        return
    event("accepted")


@fuzz(max_examples=20, deadline_s=30)
@given(MUTATIONS)
def test_a_launch_is_refused_without_a_row_or_queued_with_one(tmp_path_factory, monkeypatch, mutations):
    """``RunManager.submit`` validates everything (data included) before it writes: a refusal
    leaves the database as it was; an accepted config leaves one complete queued row (the
    worker is stubbed out: nothing trains)."""
    from engine.tracking.runs import RunManager

    config = digits_config(data={"dataset": "digits", "max_samples": 200})
    for path, value in mutations:
        config = mutate(config, path, value)
    mgr = RunManager(Store(tmp_path_factory.mktemp("db") / "r.db"), workers=1)
    monkeypatch.setattr(mgr, "_enqueue", lambda handle: None)
    try:
        try:
            run_id = mgr.submit(config)
        except FedMosaicError as exc:
            assert str(exc).isprintable()
            assert mgr.store.list_runs() == []
            event("refused")
            return
        event("accepted")
        row = mgr.store.get_run(run_id)
        assert [r["id"] for r in mgr.store.list_runs()] == [run_id]
        assert (
            row["status"] == "queued" and parse_config(row["config"]).model_dump(mode="json") == row["config"]
        )
    finally:
        mgr.shutdown(wait=False)


# ---- table files --------------------------------------------------------------------------------
NUMBER = st.integers(-1000, 1000).map(str) | st.floats(-1e3, 1e3, allow_nan=False).map(lambda f: f"{f:.3g}")
CELL = (
    NUMBER
    | NUMBER
    | (
        st.integers(-(10**12), 10**12).map(str)
        | st.floats(allow_nan=True, allow_infinity=True).map(repr)
        | NASTY_TEXT
        | st.sampled_from(["", "NA", "?", "1,5", "2024-01-01", "yes", "no"])
    )
)
HEADER = NASTY_TEXT | st.sampled_from(["f1", "y", "target", "site", "f1.1", ""])


@st.composite
def table_files(draw) -> tuple[str, bytes]:  # noqa: ANN001
    """Table files as a user might upload them: mostly numbers under distinct names, with nasty
    names and cells, ragged rows, other separators and encodings, cuts and wrong extensions."""
    n_cols = draw(st.integers(1, 8) | st.integers(3, 8))
    n_rows = draw(st.integers(0, 30))
    header = [draw(HEADER) if draw(st.integers(0, 4)) == 0 else f"c{i}" for i in range(n_cols)]
    ragged = draw(st.integers(0, 7)) == 0
    width = st.integers(0, n_cols + 1) if ragged else st.just(n_cols)
    rows = [[draw(CELL) for _ in range(draw(width))] for _ in range(n_rows)]
    sep = draw(st.sampled_from([",", ",", ";", "\t", "|"]))
    text = "\n".join(sep.join(r) for r in [header, *rows])
    encoding = draw(st.sampled_from(["utf-8", "utf-8", "utf-8", "latin-1", "utf-16", "cp1252"]))
    raw = text.encode(encoding, errors="replace")
    if draw(st.integers(0, 5)) == 0:
        raw = raw[: draw(st.integers(0, len(raw)))]
    name = draw(
        st.sampled_from(
            ["t.csv"] * 6 + ["t.tsv", "t.txt", "../../t.csv", "t.exe", ".csv", "t.xlsx", "t.parquet"]
        )
    )
    return name, raw


@fuzz(max_examples=100, deadline_s=10)
@given(table_files())
def test_any_table_upload_is_inspected_or_refused_clearly(upload):
    name, raw = upload
    try:
        path = schema.save_upload(name, raw)
        report = schema.inspect({"dataset": "csv", "path": path})
    except FedMosaicError as exc:
        assert str(exc).isprintable()
        event("refused")
        return
    event("inspected")
    assert isinstance(report.get("columns"), list)
    names = [c["name"] for c in report["columns"]]
    if names:
        try:
            summary = schema.dataset_summary({"dataset": "csv", "path": path, "target": names[-1]})
        except FedMosaicError as exc:
            assert str(exc).isprintable()
            event("refused for training")
            return
        event("loaded for training")
        assert summary["samples"] >= 1


# ---- text that leaves for a spreadsheet, a terminal, a Markdown renderer ----------------------------
@fuzz(max_examples=200, deadline_s=2)
@given(
    st.lists(
        st.lists(NASTY_TEXT | st.floats(allow_nan=True) | st.integers(), min_size=2, max_size=2), max_size=6
    ),
    st.lists(NASTY_TEXT, min_size=2, max_size=2, unique=True),
)
def test_csv_text_never_starts_a_cell_with_a_formula(rows, columns):
    import csv
    import io

    import pandas as pd

    text = csv_text(pd.DataFrame(rows, columns=columns) if rows else pd.DataFrame(columns=columns))
    for row in csv.reader(io.StringIO(text)):
        for cell in row:
            assert not cell.startswith(FORMULA_START) or _is_number(cell), cell


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


@fuzz(max_examples=300, deadline_s=2)
@given(
    st.text(alphabet=st.characters(blacklist_categories=("Cs",)) | st.sampled_from(list(string.punctuation)))
)
def test_names_become_inert_text(text):
    shown = terminal_safe(text)
    assert "\x1b" not in shown and "\x07" not in shown and "\u202e" not in shown
    md = markdown_plain(text)
    assert "\n" not in md and "\x1b" not in md
    unescaped = (
        md.replace("\\\\", "").replace("\\[", "").replace("\\]", "").replace("\\<", "").replace("\\$", "")
    )
    assert "[" not in unescaped and "<" not in unescaped and "$" not in unescaped
