"""Clients page (AppTest): the roster table, edits in the table, adding clients like one, applying a
value to selected rows, the detail form, and validation messages in the row they concern."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

from engine.design import roster
from pages.common.ui import PAGES
from tests.test_app_support import app, assert_clean


def edit(at: AppTest, rows: dict[int, dict]) -> None:
    """Commit cell edits to the roster table, as the browser does."""
    editor = at.data_editor[0]
    at.session_state[editor.key] = {
        "edited_rows": {str(i): v for i, v in rows.items()},
        "added_rows": [],
        "deleted_rows": [],
    }
    at.run()


def archs(at: AppTest) -> list[str]:
    return [r["model"]["arch"] for r in roster.expanded_rows(at.session_state["design"])]


def test_roster_table_shows_every_client_with_costs() -> None:
    at = app("clients", template="hospital")
    assert_clean(at)
    table = at.data_editor[0].value
    assert list(table["name"]) == ["Northgate", "Riverside", "St Olaf", "Hillcrest"]
    assert table["params"].min() > 0 and table["memory_mb"].min() > 0
    assert next(m.value for m in at.metric if m.label == "Clients") == "4"


def test_edit_a_cell_changes_that_client() -> None:
    at = app("clients", template="hospital")
    edit(at, {3: {"arch": "cnn"}})
    assert_clean(at)
    assert archs(at) == ["cnn", "cnn", "resnet", "cnn"]
    assert at.data_editor[0].value.loc[3, "knobs"] == ""  # the MLP's knobs do not follow it to a CNN


def test_add_clients_like_one_and_apply_to_selected() -> None:
    at = app("clients", template="hospital")
    at.selectbox(key="cl.like_src").set_value(2)
    at.number_input(key="cl.like_n").set_value(3)
    at.button(key="cl.add").click().run()
    assert_clean(at)
    assert archs(at) == ["cnn", "cnn", "resnet", "mlp", "resnet", "resnet", "resnet"]
    assert len(at.data_editor[0].value) == 7
    edit(at, {0: {"select": True}, 6: {"select": True}})
    at.selectbox(key="cl.bulk_field").set_value("lr").run()
    at.number_input(key="cl.bulk_value.lr").set_value(0.02)
    at.button(key="cl.apply").click().run()
    assert_clean(at)
    lrs = [r["lr"] for r in roster.expanded_rows(at.session_state["design"])]
    assert lrs == [0.02, 0.003, 0.003, 0.003, 0.003, 0.003, 0.02]


def test_validation_messages_sit_in_the_row() -> None:
    at = app("clients", template="hospital_records")  # tabular data
    edit(at, {1: {"arch": "cnn"}, 3: {"knobs": "hidden"}})
    assert not at.exception
    issues = list(at.data_editor[0].value["issues"])
    assert "cannot read tabular" in issues[1] and "name=value" in issues[3]
    assert issues[0] == issues[2] == issues[4] == ""
    warning = " ".join(w.value for w in at.warning)
    assert "row 1" in warning and "row 3" in warning
    at.switch_page(PAGES["launch"])
    at.run()
    launch = at.button(key="launch.go")
    assert launch.disabled
    assert any("cannot read tabular" in e.value for e in at.error)


def test_detail_form_edits_one_client() -> None:
    at = app("clients", template="hospital")
    at.selectbox(key="cl_edit_pick").set_value(1).run()
    form = at.get("form")[0]
    form.selectbox[0].set_value("gru")  # architecture
    form.number_input[0].set_value(0.01)  # learning rate
    form.checkbox[0].set_value(True)
    next(w for w in form.text_input if w.label.startswith("Data share")).set_value("0.4")  # optional: text
    next(w for w in form.checkbox if w.label == "Train with differential privacy").set_value(True)
    next(w for w in form.text_input if w.label.startswith("ε budget")).set_value("4")
    next(b for b in at.get("form_submit_button") if b.label == "Save client").click().run()
    assert_clean(at)
    row = roster.client_row(at.session_state["design"], 1)
    assert row["model"]["arch"] == "gru" and row["lr"] == 0.01 and row["cold_start"] is True
    assert (
        row["data_share"] == 0.4 and row["optimizer"] == "adam"
    )  # untouched generated fields keep their values
    assert row["privacy"]["target_epsilon"] == 4 and row["privacy"]["noise_multiplier"] is None
    assert any("Saved client Riverside" in s.value for s in at.success)


def test_remove_and_resize() -> None:
    at = app("clients")
    at.number_input(key="cl.resize_n").set_value(3).run()
    at.button(key="cl.resize").click().run()
    assert len(at.data_editor[0].value) == 3
    edit(at, {0: {"select": True}})
    at.button(key="cl.remove").click().run()
    assert_clean(at)
    assert [r["name"] for r in roster.expanded_rows(at.session_state["design"])] == ["site-2", "site-3"]
