"""One colour language (engine.reporting.charts): a strategy keeps one colour on a page, references keep
theirs, settings of one strategy get one colour each, architectures are fixed app-wide."""

from __future__ import annotations

from engine.reporting import charts
from engine.reporting.charts import style


def test_each_strategy_its_own_colour_and_the_references_theirs():
    colors = charts.series_colors(
        [
            ("fedavg (3 seeds)", "fedavg"),
            ("local (3 seeds)", "local"),
            ("centralized", "centralized"),
            ("fedproto", "fedproto"),
        ]
    )
    assert colors["local (3 seeds)"] == charts.REFERENCE_COLORS["local"]
    assert colors["centralized"] == charts.REFERENCE_COLORS["centralized"]
    assert len(set(colors.values())) == 4
    # the same strategy keeps its colour on another page with other company
    again = charts.series_colors([("fedproto", "fedproto"), ("fedavg", "fedavg")])
    assert again["fedproto"] == colors["fedproto"] and again["fedavg"] == colors["fedavg (3 seeds)"]


def test_settings_of_one_strategy_get_a_colour_each():
    colors = charts.series_colors(
        [("fedprox (mu=0.01)", "fedprox"), ("fedprox (mu=0.1)", "fedprox"), ("local", "local")]
    )
    assert colors["fedprox (mu=0.01)"] != colors["fedprox (mu=0.1)"]
    assert colors["local"] == charts.REFERENCE_COLORS["local"]
    assert charts.REFERENCE_COLORS["local"] not in (colors["fedprox (mu=0.01)"], colors["fedprox (mu=0.1)"])


def test_architecture_colours_are_fixed_and_clients_are_shades_of_them():
    assert charts.arch_color("cnn") == charts.ARCH_COLORS["cnn"] == charts.group_color("arch", "cnn")
    assert charts.arch_color("my_new_arch") == charts.arch_color("my_new_arch")  # stable for unknown names
    shades = {style._shade(charts.ARCH_COLORS["mlp"], i, 3) for i in range(3)}
    assert len(shades) == 3 and style._shade("#1f77b4", 0, 1) == "#1f77b4"
