"""engine.design, the modules the pages call: templates, the roster table and back, drafts, generated
forms, the compatibility list, the partition preview, uploads, launching through the run manager."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from engine.config import parse_config
from engine.design import (
    checks,
    compatibility,
    document,
    drafts,
    forms,
    launching,
    roster,
    roster_table,
    scenarios,
    schema,
    sizes,
    split,
)
from engine.errors import ConfigError, DataError
from engine.reporting import results
from engine.validate import validate


def tiny(**overrides):
    """A design that trains in about a second."""
    design = {
        "name": "tiny",
        "seed": 0,
        "rounds": 1,
        "checkpoint_every": 0,
        "data": {"dataset": "digits", "max_samples": 300, "partition": {"method": "iid"}},
        "clients": [{"name": "c", "count": 2, "model": {"arch": "mlp", "hidden": 16}, "batch_size": 32}],
        "strategy": {"name": "fedavg"},
    }
    design.update(overrides)
    return document.normalize(design)


# ---- templates -------------------------------------------------------------------------------------
def test_every_template_is_a_valid_experiment() -> None:
    found = {t.id: t for t in scenarios.templates()}
    assert {"quickstart", "hospital", "traffic", "edge"} <= set(found)
    for t in found.values():
        report = validate(parse_config(t.config))
        assert report.errors == [], (t.id, report.errors)
        assert t.title and t.summary and t.icon.startswith(":material/")


def test_templates_cover_the_scenarios_they_promise() -> None:
    hospital = parse_config(scenarios.template("hospital"))
    assert hospital.data.partition.method == "natural"
    assert len({c.arch for c in hospital.roster()}) >= 3  # heterogeneous image models
    traffic = parse_config(scenarios.template("traffic"))
    assert traffic.data.dataset == "traffic" and traffic.data.partition.method == "natural"
    assert {c.arch for c in traffic.roster()} <= {"lstm", "gru", "cnn1d", "transformer"}
    edge = parse_config(scenarios.template("edge"))
    assert len(edge.roster()) >= 30 and edge.deadline and edge.fraction < 1
    assert all(c.tier for c in edge.roster())
    with pytest.raises(ConfigError, match="templates: .*hospital"):
        scenarios.template("nope")


@pytest.mark.parametrize("template_id", [t.id for t in scenarios.templates()])
def test_every_template_trains_a_round(template_id: str) -> None:
    from engine.core.simulation import Simulation

    config = parse_config({**scenarios.template(template_id), "rounds": 2, "checkpoint_every": 0})
    summary = Simulation(config).run()
    assert summary["rounds_done"] == 2
    final = summary["final"]
    score = final.get("local_acc_mean", final.get("local_r2_mean"))
    assert score is not None and math.isfinite(score)  # evaluated, not NaN


# ---- the roster table ----------------------------------------------------------------------------
@pytest.mark.parametrize("template_id", ["quickstart", "hospital", "edge"])
def test_roster_table_round_trips(template_id: str) -> None:
    design = document.normalize(scenarios.template(template_id))
    frame = roster_table.roster_frame(design)
    assert len(frame) == len(parse_config(design).roster())
    assert roster.set_clients(design, roster_table.frame_to_clients(frame, design)) == design


def test_roster_table_edit_changes_only_that_client() -> None:
    design = document.normalize(scenarios.template("hospital"))
    frame = roster_table.roster_frame(design)
    frame.at[3, "arch"] = "cnn"
    frame.at[3, "knobs"] = "channels=8"
    clients = roster_table.frame_to_clients(frame, design)
    assert [c["model"]["arch"] for c in clients] == ["cnn", "cnn", "resnet", "cnn"]
    assert clients[3]["model"]["channels"] == 8
    assert roster.set_clients(design, clients)["clients"][:3] == design["clients"][:3]


def test_knobs_text_and_parsing() -> None:
    assert sizes.parse_knobs("hidden=64, depth=3, bidirectional=true") == {
        "hidden": 64,
        "depth": 3,
        "bidirectional": True,
    }
    assert sizes.knobs_text({"arch": "mlp", "width": 1.0, "hidden": 64, "depth": 2}) == "hidden=64"
    assert sizes.knobs_text({"arch": "mlp", "width": 0.75, "hidden": 128, "depth": 2}) == "width=0.75"
    with pytest.raises(ConfigError, match="name=value"):
        sizes.parse_knobs("hidden")


def test_add_like_apply_remove_resize() -> None:
    design = document.normalize(scenarios.template("hospital"))
    more = roster.add_like(design, 0, 3)
    names = [r["name"] for r in roster.expanded_rows(more)]
    assert names[4:] == ["Northgate (2)", "Northgate (3)", "Northgate (4)"]
    assert len(set(names)) == len(names)
    changed = roster_table.apply_to(more, [1, 5], "arch", "mlp")
    archs = [r["model"]["arch"] for r in roster.expanded_rows(changed)]
    assert archs == ["cnn", "mlp", "resnet", "mlp", "cnn", "mlp", "cnn"]
    assert roster.remove_clients(changed, [0, 1])["clients"][0]["name"] == "St Olaf"
    resized = roster.resize_roster(design, 2, ["a", "b"])
    assert [r["name"] for r in roster.expanded_rows(resized)] == ["a", "b"]
    with pytest.raises(ConfigError, match="at most 10,000"):
        roster.resize_roster(design, roster.MAX_CLIENTS + 1)
    with pytest.raises(ConfigError, match="between 1 and 1000"):
        roster.add_like(design, 0, roster.MAX_ADD + 1)


def test_identical_numbered_clients_compact_to_count() -> None:
    design = tiny()
    rows = roster.expanded_rows(roster.resize_roster(design, 5))
    assert [r["name"] for r in rows] == ["c-1", "c-2", "c-3", "c-4", "c-5"]
    assert roster.compact(rows) == [
        {**{k: v for k, v in rows[0].items() if k != "name"}, "name": "c", "count": 5}
    ]
    assert roster.set_clients(design, rows)["clients"][0]["count"] == 5


def test_update_client_switches_architecture_with_its_defaults() -> None:
    design = document.normalize(scenarios.template("hospital"))
    row = roster.client_row(design, 3)
    updated = roster.update_client(
        design, 3, {"arch": "cnn", "knobs": sizes.knobs_text(row["model"]), "lr": 0.01}
    )
    client = roster.client_row(updated, 3)
    assert client["model"]["arch"] == "cnn" and "hidden" not in client["model"]
    assert client["lr"] == 0.01 and client["name"] == "Hillcrest"


def test_client_issues_point_at_the_row() -> None:
    design = document.normalize(scenarios.template("hospital_records"))  # tabular data
    design = roster_table.apply_to(design, [2], "arch", "cnn")  # a CNN cannot read tabular input
    design["clients"][0]["name"] = design["clients"][1]["name"]
    design["clients"][4]["tier"] = "pocket-calculator"
    issues = checks.client_issues(design)
    assert set(issues) == {1, 2, 4}
    assert "cannot read tabular" in issues[2][0]
    assert "same name as client 0" in issues[1][0]
    assert "pocket-calculator" in " ".join(issues[4])
    frame = roster_table.roster_frame(design)
    assert frame.loc[2, "issues"] and not frame.loc[3, "issues"]


def test_costs_grow_with_model_size() -> None:
    design = document.normalize(scenarios.template("edge"))
    frame = roster_table.roster_frame(design)
    by_tier = frame.groupby("tier")[["params", "memory_mb"]].first()
    assert (
        by_tier.loc["phone-low", "params"]
        < by_tier.loc["phone-high", "params"]
        < by_tier.loc["raspberry-pi", "params"]
    )
    assert by_tier.loc["phone-low", "memory_mb"] < by_tier.loc["raspberry-pi", "memory_mb"]


# ---- generated forms ------------------------------------------------------------------------------
def test_fields_from_parameter_models() -> None:
    mu = {f.name: f for f in forms.strategy_fields("fedprox")}["mu"]
    assert (mu.kind, mu.default, mu.minimum, mu.maximum) == ("float", 0.01, 0, 100)
    assert mu.check(-1) == "must be >= 0" and mu.check(0.5) is None
    control = {f.name: f for f in forms.strategy_fields("scaffold")}["control"]
    assert control.kind == "choice" and "gradient" in control.choices
    body = {f.name: f for f in forms.strategy_fields("fedrep")}["body_epochs"]
    assert body.kind == "int" and body.optional and body.default is None
    assert [f.name for f in forms.dataset_option_fields("traffic")][:2] == ["cities", "days"]
    assert forms.dataset_option_fields("digits") == []
    assert "deadline" in [f.name for f in forms.launch_fields()]


# ---- strategies -----------------------------------------------------------------------------------
def test_compatibility_disables_with_a_reason() -> None:
    entries = {
        e["name"]: e for e in compatibility.strategies(document.normalize(scenarios.template("hospital")))
    }
    assert entries["fedproto"]["reason"] is None and entries["lg_fedavg"]["reason"] is None
    assert "fedavg needs" in entries["fedavg"]["reason"]
    assert "public" in entries["fedmd"]["reason"]
    broken = compatibility.strategies({**tiny(), "rounds": 0})
    assert all(e["reason"].startswith("fix the design first (rounds") for e in broken)


# ---- data -----------------------------------------------------------------------------------------
def test_preview_reacts_to_the_partition() -> None:
    design = roster.resize_roster(tiny(), 6)
    iid = split.preview(design)
    design["data"]["partition"] = {"method": "dirichlet", "alpha": 0.05}
    skewed = split.preview(design)
    assert len(iid["clients"]) == len(skewed["clients"]) == 6
    assert skewed["heterogeneity"] > iid["heterogeneity"] + 0.2
    assert sum(map(sum, iid["histogram"])) == sum(c["train"] for c in iid["clients"])


def test_natural_preview_names_sites_after_the_roster() -> None:
    design = document.normalize(scenarios.template("hospital"))
    names = [c["name"] for c in split.preview(design)["clients"]]
    assert names == [
        "Northgate (domain 0)",
        "Riverside (domain 1)",
        "St Olaf (domain 2)",
        "Hillcrest (domain 3)",
    ]
    assert schema.natural_names(design["data"]) == ["domain 0", "domain 1", "domain 2", "domain 3"]


def test_schema_roles_edit_the_data_section() -> None:
    data = {"dataset": "csv", "path": "examples/data/hospital.csv"}
    data = schema.set_column_role(data, "readmitted", "target")
    data = schema.set_column_role(data, "hospital", "split")
    data = schema.set_column_role(data, "ward", "ignore")
    data = schema.set_column_role(data, "age", "feature", "categorical")
    assert data["target"] == "readmitted"
    assert data["partition"] == {"method": "natural", "column": "hospital"}
    assert data["columns"] == {"ward": {"type": "ignore"}, "age": {"type": "categorical"}}
    frame = schema.schema_frame(schema.inspect(data), data).set_index("column")
    assert frame.loc["readmitted", "role"] == "target" and frame.loc["hospital", "role"] == "split"
    assert frame.loc["ward", "role"] == "ignore" and frame.loc["patient_id", "role"] == "ignore"
    data = schema.set_column_role(data, "hospital", "feature")
    assert data["partition"] == {"method": "iid"}


def test_upload_is_sanitised_and_bounded(tmp_path: Path) -> None:
    content = Path("examples/data/hospital.csv").read_bytes()
    rel = schema.save_upload("../../etc/evil name.csv", content, root=tmp_path)
    assert rel == "uploads/evil name.csv"  # no path part; the name as the user knows it
    assert (tmp_path / rel).read_bytes() == content
    with pytest.raises(DataError, match="not a table file.*xlsx.*parquet"):
        schema.save_upload("model.pkl", b"x", root=tmp_path)
    with pytest.raises(DataError, match="over the 0 MB limit"):
        schema.save_upload("big.csv", b"x" * 2_000_000, limit_mb=0.5, root=tmp_path)


# ---- drafts and config files ----------------------------------------------------------------------
def test_drafts_autosave_and_named(tmp_path: Path) -> None:
    design = document.normalize(scenarios.template("traffic"))
    drafts.autosave("session-abc123", design, root=tmp_path)
    assert drafts.load_autosave("session-abc123", root=tmp_path) == design
    assert drafts.load_autosave("missing-0000", root=tmp_path) is None
    assert drafts.load_autosave("../../x", root=tmp_path) is None
    assert drafts.is_session_id(drafts.new_session_id()) and not drafts.is_session_id("../../x")
    drafts.save_draft("My traffic/study", design, root=tmp_path)
    saved = drafts.list_drafts(root=tmp_path)
    assert [(d["name"], d["clients"], d["dataset"]) for d in saved] == [("My traffic/study", 4, "traffic")]
    assert drafts.load_draft(saved[0]["key"], root=tmp_path) == design
    drafts.delete_draft(saved[0]["key"], root=tmp_path)
    assert drafts.list_drafts(root=tmp_path) == []
    with pytest.raises(ConfigError, match="no draft"):
        drafts.load_draft("gone", root=tmp_path)


def test_config_export_import_round_trip() -> None:
    design = document.normalize(scenarios.template("edge"))
    assert document.config_from_json(document.config_json(design).encode()) == design
    with pytest.raises(ConfigError, match="not valid JSON"):
        document.config_from_json("{not json")
    with pytest.raises(ConfigError, match="rounds"):
        document.config_from_json(json.dumps({**design, "rounds": -1}))


def test_parse_seeds() -> None:
    assert launching.parse_seeds("0-2, 5 5") == [0, 1, 2, 5]
    with pytest.raises(ConfigError, match="'x' is not a seed"):
        launching.parse_seeds("1, x")
    with pytest.raises(ConfigError, match="at least one"):
        launching.parse_seeds(" ")


def test_config_diff_lists_only_differences() -> None:
    a = tiny()
    b = {**tiny(), "seed": 3, "strategy": {"name": "fedprox", "mu": 0.1}}
    diff = results.config_diff({"a": a, "b": b}).set_index("setting")
    assert set(diff.index) == {"seed", "strategy.name", "strategy.mu"}
    assert diff.loc["seed"].tolist() == ["0", "3"] and diff.loc["strategy.mu", "a"] == "—"


# ---- launching -------------------------------------------------------------------------------------
def test_launch_single_run_and_sweep(tmp_path: Path) -> None:
    from engine.tracking.runs import RunManager

    mgr = RunManager(tmp_path / "runs.db", workers=1)
    try:
        one = launching.launch(tiny(), mgr=mgr, tags=["smoke"])
        assert one.group_id is None and len(one.run_ids) == 1
        assert mgr.wait(one.run_ids[0], 120) == "finished"
        sweep = launching.launch(
            tiny(),
            strategies=["fedavg", "fedprox"],
            seeds=[0, 1],
            strategy_params={"fedprox": {"mu": 0.5}},
            name="cmp",
            mgr=mgr,
        )
        assert len(sweep.run_ids) == 4 and sweep.group_id
        for rid in sweep.run_ids:
            assert mgr.wait(rid, 120) == "finished"
        rows = mgr.store.list_runs(group_id=sweep.group_id)
        assert sorted((r["variant"], r["seed"]) for r in rows) == [
            ("fedavg", 0),
            ("fedavg", 1),
            ("fedprox (mu=0.5)", 0),
            ("fedprox (mu=0.5)", 1),
        ]
        frame = results.runs_frame(mgr.store)
        assert len(frame) == 5 and set(frame["status"]) == {"finished"}
        assert list(results.runs_frame(mgr.store, search="smoke")["id"]) == one.run_ids
        assert len(results.runs_frame(mgr.store, search=sweep.group_id)) == 4
        assert results.runs_frame(mgr.store, status=["failed"]).empty
    finally:
        mgr.shutdown(wait=False)
    with pytest.raises(ConfigError):
        launching.launch({**tiny(), "rounds": 0}, mgr=mgr)


def test_every_page_runs_through_the_router() -> None:
    """No page script sits directly in ``pages/`` (each is in its section's folder), so Streamlit's
    legacy multipage mode, entered on a fresh server's first run (and by AppTest before every run)
    because the folder exists, finds no page of its own: ``app.py`` runs and routes to the page."""
    from streamlit.testing.v1 import AppTest

    from pages.common.ui import PAGES

    root = Path(__file__).resolve().parent.parent
    assert not list((root / "pages").glob("*.py"))
    assert all((root / path).is_file() and Path(path).parent.name != "pages" for path in PAGES.values())
    at = AppTest.from_file(str(root / "app.py"), default_timeout=60)
    at.run()
    at.switch_page(PAGES["catalog"])
    at.run()
    assert not at.exception
    assert at.title[0].value == "Catalog"
    assert any(c.value == "EXPERIMENT BEING DESIGNED" for c in at.sidebar.caption)  # drawn by app.py


def test_no_page_reaches_a_private_name() -> None:
    """Pages and the router use what the engine and ``pages.common`` make public: no imported name
    and no attribute of an imported module starts with an underscore."""
    import ast

    root = Path(__file__).resolve().parent.parent
    found = []
    for path in [root / "app.py", *sorted((root / "pages").rglob("*.py"))]:
        tree = ast.parse(path.read_text())
        modules = {
            a.asname or a.name
            for n in ast.walk(tree)
            if isinstance(n, ast.ImportFrom | ast.Import)
            for a in n.names
        }
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                names = [node.module or "", *(a.name for a in node.names)]
                found += [
                    f"{path.name}: from {node.module} import {n}"
                    for n in names
                    if any(p.startswith("_") and not p.startswith("__") for p in n.split("."))
                ]
            elif (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in modules - {"st"}
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
            ):
                found.append(f"{path.name}:{node.lineno}: {node.value.id}.{node.attr}")
    assert not found, found


def test_no_page_script_writes_a_stray_string() -> None:
    """Streamlit's magic writes every bare string statement of a page script on the page (a
    "docstring" under an assignment showed up on Results); only each function's and the module's
    first statement may be one."""
    import ast

    root = Path(__file__).resolve().parent.parent
    found = []

    def walk(body: list, path: Path) -> None:
        for i, node in enumerate(body):
            if (
                i
                and isinstance(node, ast.Expr)
                and isinstance(node.value, ast.Constant)
                and isinstance(node.value.value, str)
            ):
                found.append(f"{path.relative_to(root)}:{node.lineno}")
            for field in ("body", "orelse", "finalbody", "handlers"):
                walk([n for n in getattr(node, field, []) if isinstance(n, ast.AST)], path)

    for path in (root / "pages").rglob("*.py"):
        if path.parent.name != "common":  # imported modules, not scripts: magic does not apply
            walk(ast.parse(path.read_text()).body, path)
    walk(ast.parse((root / "app.py").read_text()).body, root / "app.py")
    assert not found, found
