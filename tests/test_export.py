"""Exports: CSVs parse back to the stored numbers, the JSON config re-runs to the same figures,
the manifest, the HTML report holds its charts and config, and the chart builders."""

from __future__ import annotations

import json
import math
import re
from datetime import datetime
from html.parser import HTMLParser
from io import StringIO

import pandas as pd
import pytest
import torch
from conftest import digits_config

from engine.config import parse_config
from engine.core.simulation import Simulation
from engine.errors import ConfigError
from engine.reporting import charts, export, tables
from engine.reporting.report import build_report, write_report


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A store with two seeds of a sweep-like group and one mixed-architecture run."""
    from engine.tracking.storage import Store

    store = Store(tmp_path_factory.mktemp("export") / "runs.db")
    ids = []
    for seed in (0, 1):
        config = parse_config(digits_config(rounds=3, seed=seed, fraction=0.75))
        run_id = store.create_run(
            config.model_dump(mode="json"), name=f"fedavg seed {seed}", group_id="g1", variant="fedavg"
        )
        Simulation(config, store=store, run_id=run_id).run()
        ids.append(run_id)
    mixed = parse_config(
        digits_config(
            rounds=2,
            strategy={"name": "lg_fedavg"},
            clients=[
                {"name": "small", "count": 2, "model": {"arch": "mlp", "hidden": 16}},
                {"name": "cnn", "count": 2, "model": {"arch": "cnn"}},
            ],
        )
    )
    sim = Simulation(mixed, store=store)
    sim.run()
    ids.append(sim.run_id)
    return store, ids


def long_rounds(store, run_id):
    rm = store.round_metrics(run_id)
    return {(int(r), k): v for r, k, v in zip(rm["round"], rm["key"], rm["value"], strict=True)}


def same(a, b):
    return (a is None or (isinstance(a, float) and math.isnan(a))) and (b is None or math.isnan(b)) or a == b


# ---- CSV ----------------------------------------------------------------------------------------
def test_round_csv_parses_back_to_the_same_numbers(runs, tmp_path):
    store, ids = runs
    path = export.export_run(store, ids[0], "csv", tmp_path / "rounds.csv")
    table = pd.read_csv(path)
    assert list(table["round"]) == [1, 2, 3]
    stored = long_rounds(store, ids[0])
    assert len(stored) == (table.shape[1] - 1) * 3
    for (rnd, key), value in stored.items():
        assert same(table.loc[table["round"] == rnd, key].item(), value), (rnd, key)
    several = pd.read_csv(StringIO(export.render(store, ids[:2], "csv").data.decode()))
    assert list(several.columns[:2]) == ["run_id", "round"] and len(several) == 6
    assert set(several["run_id"]) == set(ids[:2])


def test_client_csvs_long_and_wide_parse_back(runs, tmp_path):
    store, ids = runs
    run_id = ids[2]
    cm = store.client_metrics(run_id)
    stored = {
        (int(r), int(c), k): v
        for r, c, k, v in zip(cm["round"], cm["client_id"], cm["key"], cm["value"], strict=True)
    }
    long = pd.read_csv(export.export_run(store, run_id, "clients-csv", tmp_path / "long.csv"))
    assert list(long.columns) == ["run_id", "round", "client_id", "client", "arch", "key", "value"]
    assert len(long) == len(stored)
    for r, c, k, v in zip(long["round"], long["client_id"], long["key"], long["value"], strict=True):
        assert same(v, stored[(r, c, k)])
    assert set(zip(long["client"], long["arch"], strict=True)) == {
        ("small-1", "mlp"),
        ("small-2", "mlp"),
        ("cnn-1", "cnn"),
        ("cnn-2", "cnn"),
    }
    wide = pd.read_csv(export.export_run(store, run_id, "clients-wide-csv", tmp_path / "wide.csv"))
    assert len(wide) == len({(r, c) for r, c, _ in stored})
    for (r, c, k), v in stored.items():
        row = wide[(wide["round"] == r) & (wide["client_id"] == c)]
        assert same(row[k].item(), v), (r, c, k)


def test_summary_csv_across_runs_matches_each_runs_final_figures(runs, tmp_path):
    store, ids = runs
    path = export.export_runs(store, ids, "summary-csv", tmp_path / "summary.csv")
    table = pd.read_csv(path)
    assert list(table["run_id"]) == ids
    for run_id in ids:
        row = table[table["run_id"] == run_id].iloc[0]
        final = store.get_run(run_id)["summary"]
        assert row["status"] == "finished" and row["rounds_done"] == store.get_run(run_id)["rounds"]
        for key, value in final.items():
            assert same(row[key], value), key
        assert datetime.fromisoformat(row["finished_at"]) >= datetime.fromisoformat(row["started_at"])


def test_seeds_csv_averages_the_group(runs):
    store, ids = runs
    table = pd.read_csv(StringIO(export.render(store, ids, "seeds-csv").data.decode()))
    row = table[(table["setting"] == "fedavg") & (table["metric"] == "global_acc_mean")].iloc[0]
    values = [store.get_run(r)["summary"]["global_acc_mean"] for r in ids[:2]]
    assert row["n"] == 2 and row["seeds"] == "0 1"
    assert row["mean"] == pytest.approx(sum(values) / 2, abs=1e-12)
    assert row["std"] == pytest.approx(abs(values[0] - values[1]) / math.sqrt(2), abs=1e-12)
    alone = table[table["group_id"].isna()]
    assert set(alone["n"]) == {1} and set(alone["std"]) == {0.0}


# ---- JSON ---------------------------------------------------------------------------------------
def test_config_json_reruns_to_the_same_figures(runs, tmp_path):
    store, ids = runs
    path = export.export_run(store, ids[0], "json", tmp_path / "config.json")
    config = parse_config(json.loads(path.read_text()))
    assert config.model_dump(mode="json") == store.get_run(ids[0])["config"]
    again = Simulation(config, store=store)
    again.run()
    a, b = long_rounds(store, ids[0]), long_rounds(store, again.run_id)
    assert a.keys() == b.keys()
    assert all(same(a[k], b[k]) for k in a if "wall_s" not in k[1])


def test_manifest_holds_what_reproduction_needs(runs):
    store, ids = runs
    m = json.loads(export.render(store, ids[1], "manifest").data)
    run = store.get_run(ids[1])
    assert m["seed"] == 1 and m["partition_fingerprint"] == run["manifest"]["partition_fingerprint"]
    assert len(m["partition_fingerprint"]) >= 8
    assert m["versions"]["torch"] == torch.__version__ and "numpy" in m["versions"]
    assert m["devices"] == ["cpu"]
    start, end = datetime.fromisoformat(m["started_at"]), datetime.fromisoformat(m["finished_at"])
    assert start <= end and m["duration_s"] >= 0 and m["rounds_done"] == 3
    assert m["config_sha256"] == tables.config_fingerprint(run["config"])
    assert m["config_sha256"] != tables.config_fingerprint(store.get_run(ids[0])["config"])


# ---- HTML ---------------------------------------------------------------------------------------
class _Scan(HTMLParser):
    def __init__(self):
        super().__init__()
        self.scripts, self.external, self.json, self._json_id, self.divs = [], [], {}, None, []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "script":
            if a.get("src"):
                self.external.append(a["src"])
            self._json_id = a.get("id") if a.get("type") == "application/json" else None
        if tag == "div" and "plotly-graph-div" in (a.get("class") or ""):
            self.divs.append(a.get("id"))

    def handle_data(self, data):
        if self._json_id:
            self.json[self._json_id] = self.json.get(self._json_id, "") + data

    def handle_endtag(self, tag):
        if tag == "script":
            self._json_id = None


def test_html_report_of_several_runs_is_self_contained_with_charts_and_configs(runs, tmp_path):
    store, ids = runs
    path = write_report(store, ids, tmp_path / "my report", title="Study <1>")
    assert path.name == "my_report.html"
    text = path.read_text(encoding="utf-8")
    scan = _Scan()
    scan.feed(text)
    assert scan.external == []  # plotly.js is inline: opens offline
    assert text.count("plotly.js v") >= 1 and len(text) > 3_000_000
    assert len(scan.divs) >= 8 and len(set(scan.divs)) == len(scan.divs)
    assert text.count("Plotly.newPlot") == len(scan.divs)
    for run_id in ids:
        assert json.loads(scan.json[f"config-{run_id}"]) == store.get_run(run_id)["config"]
    summary = json.loads(scan.json["summary-data"])
    assert [r["run_id"] for r in summary] == ids
    assert "Study &lt;1&gt;" in text and "<title>Study &lt;1&gt;</title>" in text
    assert "Averaged over seeds" in text and "small-1" in text


def test_html_report_of_one_run_via_export(runs, tmp_path):
    store, ids = runs
    rendered = export.render(store, ids[2], "html")
    assert rendered.mime == "text/html" and rendered.filename.endswith("-html.html")
    text = rendered.data.decode()
    assert "Averaged over seeds" not in text and text.count("Plotly.newPlot") >= 5
    assert '"lg_fedavg"' in text


# ---- names, formats -----------------------------------------------------------------------------
def test_file_names_are_sanitised(runs, tmp_path):
    store, ids = runs
    store.rename_run(ids[0], "../../etc/passwd: ICU?")
    name = export.default_filename(store, ids[0], "csv")
    assert re.fullmatch(r"[A-Za-z0-9._-]+", name) and "passwd" in name and ".." not in name
    path = export.export_run(store, ids[0], "csv", tmp_path / "a b?.csv")
    assert path == tmp_path / "a_b_.csv" and path.exists()
    folder = export.export_run(store, ids[0], "manifest", tmp_path)
    assert folder.parent == tmp_path and folder.name == name.replace("-rounds.csv", "-manifest.json")
    store.rename_run(ids[0], "fedavg seed 0")


def test_unknown_format_and_one_run_formats_are_refused(runs):
    store, ids = runs
    with pytest.raises(ConfigError, match="unknown export format 'xlsx'"):
        export.render(store, ids[0], "xlsx")
    with pytest.raises(ConfigError, match="exports one run"):
        export.render(store, ids, "json")
    with pytest.raises(ConfigError, match="at least one run"):
        export.render(store, [], "csv")


# ---- charts -------------------------------------------------------------------------------------
def test_curves_average_seeds_with_a_band(runs):
    store, ids = runs
    rows = store.list_runs(ids=ids)
    fig = charts.curves(store.round_metrics(ids), "global_acc_mean", runs=rows)
    names = [t.name for t in fig.data if t.showlegend is not False]
    mixed = next(r["name"] for r in rows if r["id"] == ids[2])
    assert sorted(names) == sorted(["fedavg (2 seeds)", mixed])
    band = [t for t in fig.data if t.fill == "tonexty"]
    assert len(band) == 1
    mean = next(t for t in fig.data if t.name == "fedavg (2 seeds)")
    rm = store.round_metrics(ids[:2])
    at3 = rm[(rm["round"] == 3) & (rm["key"] == "global_acc_mean")]["value"]
    assert mean.y[-1] == pytest.approx(at3.mean())
    upper = next(
        t
        for t in fig.data
        if t.legendgroup == "fedavg (2 seeds)" and t.fill is None and t.showlegend is False
    )
    assert upper.y[-1] - mean.y[-1] == pytest.approx(at3.std(ddof=1))
    by_bytes = charts.curves(store.round_metrics(ids), "global_acc_mean", x="cum_bytes_up", runs=rows)
    assert max(by_bytes.data[-1].x) > 0
    missing = charts.curves(store.round_metrics(ids), "global_acc_mean", x="sim_time_s", runs=rows)
    assert not missing.data and "No 'Simulated time" in missing.layout.annotations[0].text
    import plotly.io as pio

    for chart in (fig, missing):  # the template is the module's default, applied as the page sends the chart
        assert (
            json.loads(pio.to_json(chart, validate=False))["layout"]["template"]["layout"]["plot_bgcolor"]
            == "white"
        )


def test_client_views_colour_by_architecture(runs):
    store, ids = runs
    cm, roster = store.client_metrics(ids[2]), store.clients(ids[2])
    bars = charts.final_client_bars(cm, "local_acc", roster)
    assert sorted(t.name for t in bars.data) == ["cnn", "mlp"]
    assert sum(len(t.x) for t in bars.data) == 4
    heat = charts.client_heatmap(cm, "local_acc", roster)
    assert heat.data[0].z.shape == (4, 2) and "small-1 (mlp)" in heat.data[0].y
    lines = charts.client_curves(cm, "local_acc", roster)
    # every client is its own named line; clients of one architecture are shades of its fixed colour
    names = roster.set_index("client_id")["name"]
    assert sorted(t.name for t in lines.data) == sorted(
        f"{names[c]} ({a})" for c, a in zip(roster["client_id"], roster["arch"], strict=True)
    )
    by_arch = {}
    for t in lines.data:
        by_arch.setdefault(t.legendgroup, set()).add(t.line.color)
    assert {a: len(c) for a, c in by_arch.items()} == dict(roster["arch"].value_counts())
    assert {t.marker.color for t in bars.data} == {charts.ARCH_COLORS["mlp"], charts.ARCH_COLORS["cnn"]}
    rows = store.list_runs(ids=ids)
    fair = charts.fairness(store.client_metrics(ids), "local_acc", runs=rows)
    assert len([t for t in fair.data if t.type == "box"]) == 3
    # one colour per setting across the page's charts: a run's box has its curve's colour
    curve = charts.curves(store.round_metrics(ids), "global_acc_mean", runs=rows)
    curve_colors = {t.name: t.line.color for t in curve.data if t.showlegend is not False}
    box_colors = {t.name: t.marker.color for t in fair.data if t.type == "box"}
    run_colors = charts.run_colors(ids, rows)
    assert len(set(curve_colors.values())) == len(curve_colors)
    for run_id in ids:
        assert run_colors[run_id] in curve_colors.values()
    assert set(box_colors.values()) == set(curve_colors.values())
    comm = charts.communication(store.round_metrics(ids), runs=store.list_runs(ids=ids))
    assert len(comm.data) == 4  # (fedavg group, mixed run) x (up, down)


def test_metric_labels_read_like_words():
    assert charts.metric_label("global_acc_mean") == "Accuracy on the global test set (mean over clients)"
    assert (
        charts.metric_label("local_loss_worst10")
        == "Loss on each client's own test data (worst 10% of clients)"
    )
    assert (
        charts.metric_label("server_acc[cnn]") == "Accuracy of the server model on the global test set [cnn]"
    )
    assert charts.metric_label("cum_bytes_up") == "Data uploaded (bytes, cumulative)"


def test_build_report_needs_a_run(runs):
    with pytest.raises(ConfigError):
        build_report(runs[0], [])


@pytest.mark.browser
def test_html_report_renders_its_charts_offline_in_chromium(runs, tmp_path):
    """The report opened from disk in headless Chromium with every network request blocked:
    each chart draws an SVG, and no script fails."""
    from bench.app_server import CHROMIUM, CHROMIUM_ARGS

    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: install Debian's chromium to run the browser tests")
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    store, ids = runs
    path = write_report(store, ids, tmp_path / "report.html")
    errors, requests = [], []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.route("http*://**", lambda route: (requests.append(route.request.url), route.abort()))
            page.goto(path.as_uri())
            page.wait_for_function(
                "document.querySelectorAll('.js-plotly-plot .main-svg').length > 0", timeout=30000
            )
            drawn = page.evaluate("document.querySelectorAll('.js-plotly-plot').length")
            divs = page.evaluate("document.querySelectorAll('.plotly-graph-div').length")
            traces = page.evaluate(
                "Array.from(document.querySelectorAll('.js-plotly-plot')).map(d => d.data.length)"
            )
        finally:
            browser.close()
    assert errors == [] and requests == []
    assert drawn == divs >= 8 and all(n >= 1 for n in traces)
