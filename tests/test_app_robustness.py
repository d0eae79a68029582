"""The app's side of attacks and defences, through the functions the pages call (engine.design):
the roster's attack columns, the defences Launch offers, a sweep over defences, the attack chart
from stored runs, the "one compromised site" template, the catalog's attacks and defences."""

from __future__ import annotations

import pandas as pd
import pytest
from conftest import digits_config

from engine.catalog import catalog
from engine.config import parse_config
from engine.design import adversaries, checks, document, forms, launching, roster, roster_table, scenarios
from engine.errors import ConfigError
from engine.reporting import results
from engine.robustness.report import NO_ATTACK, attack_chart, attack_rows, attack_table
from engine.tracking.runs import RunManager
from engine.validate import validate


def test_the_template_is_one_compromised_site_with_a_backdoor() -> None:
    config = parse_config(scenarios.template("compromised_site"))
    bad = [c for c in config.roster() if c.adversary is not None]
    assert len(bad) == 1 and bad[0].adversary.attack == "backdoor"
    assert validate(config).ok
    assert "compromised_site" in {t.id for t in scenarios.templates()}


def test_the_roster_shows_attacks_and_round_trips() -> None:
    design = document.normalize(scenarios.template("compromised_site"))
    frame = roster_table.roster_frame(design)
    assert list(frame["attack"]) == ["honest"] * 9 + ["Backdoor trigger"]
    assert frame["attack_settings"].iloc[-1] == "boost=3"  # only what differs from the defaults
    assert (
        adversaries.compromised_summary(design) == "Compromised: row 9 (compromised-site, Backdoor trigger)."
    )
    assert adversaries.compromised_summary(scenarios.template("quickstart")) is None
    assert roster.set_clients(design, roster_table.frame_to_clients(frame, design)) == design


def test_editing_the_attack_cells_changes_the_client() -> None:
    design = document.normalize(scenarios.template("quickstart"))
    frame = roster_table.roster_frame(design)
    frame.at[0, "attack"] = "Label flipping"
    frame.at[0, "attack_settings"] = "source=7, target=1"
    changed = roster.set_clients(design, roster_table.frame_to_clients(frame, design))
    assert changed["clients"][0]["adversary"] == {
        "attack": "label_flip",
        "source": 7,
        "target": 1,
        "share": 1.0,
    }
    assert all(c.get("adversary") is None for c in changed["clients"][1:])
    frame = roster_table.roster_frame(changed)
    frame.at[0, "attack"] = "honest"
    assert (
        roster.set_clients(changed, roster_table.frame_to_clients(frame, changed))["clients"][0].get(
            "adversary"
        )
        is None
    )


def test_bad_attack_settings_are_a_row_issue_that_names_the_fix() -> None:
    design = document.normalize(scenarios.template("quickstart"))
    frame = roster_table.roster_frame(design)
    frame.at[1, "attack"] = "Backdoor trigger"
    frame.at[1, "attack_settings"] = "target 3"
    changed = roster.set_clients(design, roster_table.frame_to_clients(frame, design))
    issues = checks.client_issues(changed)
    assert any("attack settings 'target 3': use name=value pairs" in m for m in issues[1])
    frame.at[1, "attack_settings"] = "tagret=3"
    issues = checks.client_issues(roster.set_clients(design, roster_table.frame_to_clients(frame, design)))
    assert any("tagret: unknown name; valid names: target" in m for m in issues[1])


def test_bulk_setting_an_attack_clears_the_other_attacks_settings() -> None:
    design = document.normalize(scenarios.template("compromised_site"))
    changed = roster_table.apply_to(design, [9], "attack", "Sign flipping")
    assert roster_table.roster_frame(changed)["attack_settings"].iloc[-1] == ""
    assert [c.get("adversary") for c in roster.expanded_rows(changed)][-1] == {
        "attack": "sign_flip",
        "start_round": 1,
        "scale": 1.0,
    }


def test_the_one_client_form_reads_attack_settings() -> None:
    assert adversaries.adversary_form("Scaled update (model replacement)", "boost=5") == {
        "attack": "scaled_update",
        "boost": 5,
    }
    assert adversaries.adversary_form("honest", "") is None
    with pytest.raises(ConfigError, match="name=value"):
        adversaries.adversary_form("Backdoor trigger", "oops")


def test_launch_offers_the_defences_that_apply_and_says_why_not() -> None:
    design = document.normalize(scenarios.template("compromised_site"))
    offered = {d["name"]: d for d in adversaries.defences(design, ["fedavg"])}
    assert offered["none"]["reason"] is None and offered["median"]["reason"] is None
    refused = {d["name"]: d["reason"] for d in adversaries.defences(design, ["fedavg", "fedgh"])}
    assert refused["none"] is None and "fedgh trains its global head" in refused["krum"]
    assert [f.name for f in forms.defence_fields("trimmed_mean")] == ["trim"]


def test_a_sweep_over_defences_runs_each_and_the_attack_chart_compares_them(tmp_path) -> None:  # noqa: ANN001
    mgr = RunManager(tmp_path / "runs.db", workers=1)
    try:
        clients = [
            {"name": "c", "count": 3, "model": {"arch": "mlp", "hidden": 8}},
            {
                "name": "bad",
                "model": {"arch": "mlp", "hidden": 8},
                "adversary": {"attack": "backdoor", "boost": 3},
            },
        ]
        design = document.normalize(digits_config(rounds=2, checkpoint_every=0, clients=clients))
        launched = launching.launch(
            design, seeds=[0, 1], mgr=mgr, defences=[{"name": "none"}, {"name": "trimmed_mean", "trim": 0.3}]
        )
        for rid in launched.run_ids:
            assert mgr.wait(rid, 120) == "finished"
        runs = [mgr.store.get_run(i) for i in launched.run_ids]
        assert sorted({r["variant"] for r in runs}) == [
            "fedavg · None (plain average)",
            "fedavg · Trimmed mean (trim=0.3)",
        ]
        assert sorted(r["config"]["defence"]["name"] for r in runs) == [
            "none",
            "none",
            "trimmed_mean",
            "trimmed_mean",
        ]
        view = results.attack_view(mgr.store, launched.run_ids)
        assert view is not None
        table, metric = view
        assert metric == "accuracy" and list(table["seeds"]) == [2, 2]
        assert table["asr_mean"].between(0, 1).all() and table["primary_mean"].between(0, 1).all()
        assert results.attack_view(mgr.store, launched.run_ids[:1]) is None  # one defence: nothing to compare
        info = results.run_attack(runs[0], mgr.store.round_metrics(runs[0]["id"]))
        assert info["attack"] == "1 of 4 clients: Backdoor trigger" and 0 <= info["asr"] <= 1
    finally:
        mgr.shutdown(wait=False)


def fake_run(i: int, defence: str, attacked: bool, acc: float, asr: float | None, seed: int = 0) -> dict:
    clients = [
        {"name": "a", "count": 9},
        {"name": "b", **({"adversary": {"attack": "backdoor"}} if attacked else {})},
    ]
    summary = {"best_local_acc_mean": acc, **({"backdoor_asr": asr} if asr is not None else {})}
    return {
        "id": f"r{i}",
        "status": "finished",
        "config": {
            "seed": seed,
            "strategy": {"name": "fedavg"},
            "defence": {"name": defence},
            "clients": clients,
        },
        "summary": summary,
    }


def test_the_attack_table_averages_seeds_per_defence_with_the_clean_run_first() -> None:
    runs = [
        fake_run(1, "none", True, 0.80, 0.9),
        fake_run(2, "none", True, 0.84, 0.7, seed=1),
        fake_run(3, "median", True, 0.85, 0.05),
        fake_run(4, "none", False, 0.88, None),
    ]
    rows = attack_rows(runs)
    assert list(rows["primary"]) == [0.80, 0.84, 0.85, 0.88] and pd.isna(rows["asr"].iloc[3])
    table = attack_table(rows)
    assert list(table["defence"]) == ["None (plain average)", "None (plain average)", "Coordinate median"]
    assert (
        table["attack"].iloc[0] == NO_ATTACK
        and table["attack"].iloc[1] == "1 of 10 clients: Backdoor trigger"
    )
    undefended = table.iloc[1]
    assert undefended["primary_mean"] == pytest.approx(0.82) and undefended["asr_mean"] == pytest.approx(0.8)
    assert undefended["seeds"] == 2 and undefended["primary_std"] == pytest.approx(
        pd.Series([0.8, 0.84]).std()
    )
    fig = attack_chart(table, "accuracy")
    assert [t.name for t in fig.data] == [
        "accuracy (higher is better)",
        "attack success rate (lower is better)",
    ]
    assert list(fig.data[0].x) == ["no attack", "None (plain average)", "Coordinate median"]


def test_the_catalog_lists_attacks_and_defences() -> None:
    cat = catalog()
    assert {a["name"] for a in cat["attacks"]} >= {
        "label_flip",
        "sign_flip",
        "scaled_update",
        "gaussian_noise",
        "backdoor",
        "poisoned_logits",
        "poisoned_prototypes",
    }
    assert {d["name"] for d in cat["defences"]} >= {
        "median",
        "trimmed_mean",
        "krum",
        "multi_krum",
        "norm_clip",
    }
    backdoor = next(a for a in cat["attacks"] if a["name"] == "backdoor")
    assert backdoor["acts_on"] == "data" and any(p["name"] == "target" for p in backdoor["params"])
