"""Every reproduction of issue #16 (a new user's and a hostile user's inputs) as a plain
regression test: each must end in one clear FedMosaicError message, or be handled, or be refused,
never a traceback, a hang, a half-stored row, a silent misreading or a server file shown."""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
from conftest import digits_config

from engine import cli
from engine.access import REFUSED, AccessError, trusted_paths
from engine.config import parse_config
from engine.core.simulation import Simulation
from engine.design import checks, document, launching, scenarios, schema, split
from engine.errors import ConfigError, DataError, FedMosaicError
from engine.tracking.runs import RunManager
from engine.tracking.storage import Store
from engine.validate import validate

ROOT = Path(__file__).resolve().parents[1]
SECRET = "root:x:0:0:"  # what /etc/passwd would show


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    """``python -m engine ARGS`` in this process; its exit status, stdout and stderr."""
    rc = cli.main(list(args))
    out = capsys.readouterr()
    return rc, out.out, out.err


def one_line_error(rc: int, err: str) -> str:
    assert rc == 2, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    return lines[0]


def write_csv(path: Path, frame: pd.DataFrame) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)
    return path


def tabular(n: int, site: list[str] | None = None) -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            "f1": [i % 7 for i in range(n)],
            "f2": [(i * 3) % 5 for i in range(n)],
            "y": [i % 2 for i in range(n)],
        }
    )
    if site is not None:
        frame["site"] = site
    return frame


def csv_design(path: str, **data) -> dict:
    return digits_config(
        data={"dataset": "csv", "path": path, "target": "y", **data},
        clients=[{"name": "c", "count": 2, "model": {"arch": "mlp", "hidden": 8}}],
        rounds=1,
    )


# ---- server files readable from the app ---------------------------------------------------------
OUTSIDE = ["/etc/passwd", "/etc/shadow", "/proc/self/environ", "../../../../../../etc/passwd", "~/.bashrc"]


@pytest.mark.parametrize("path", OUTSIDE)
def test_a_design_naming_a_server_file_is_refused_showing_nothing_of_it(path):
    data = {"dataset": "csv", "path": path, "delimiter": ":"}
    design = digits_config(data={**data, "target": "y"})
    for attempt in (
        lambda: schema.inspect(data),
        lambda: schema.dataset_summary(data),
        lambda: split.preview(design),
        lambda: schema.natural_names({**data, "partition": {"method": "natural", "column": "x"}}),
    ):
        with pytest.raises(AccessError) as caught:
            attempt()
        assert str(caught.value) == REFUSED
    problems = checks.design_problems(design)
    assert problems == [f"data: {REFUSED}"]
    with pytest.raises(AccessError):
        document.config_from_json(json.dumps(design))
    assert SECRET not in REFUSED and path not in REFUSED


def test_a_symlink_out_of_the_uploads_folder_is_refused(tmp_path):
    stored = schema.save_upload("ok.csv", b"f1,y\n1,0\n2,1\n")
    link = Path(os.environ["FEDMOSAIC_HOME"]) / "uploads" / "evil.csv"
    link.symlink_to("/etc/passwd")
    assert schema.inspect({"dataset": "csv", "path": stored})["columns"]
    with pytest.raises(AccessError, match="outside the folders FedMosaic may read"):
        schema.inspect({"dataset": "csv", "path": "uploads/evil.csv", "delimiter": ":"})


def test_allowed_roots_read_uploads_examples_and_operator_folders(tmp_path, monkeypatch):
    upload = schema.save_upload("sites.csv", tabular(40).to_csv(index=False).encode())
    assert schema.dataset_summary({"dataset": "csv", "path": upload, "target": "y"})["samples"] == 40
    example = scenarios.example_csvs()[0]
    assert schema.inspect({"dataset": "csv", "path": example})["columns"]
    shared = write_csv(tmp_path / "shared" / "t.csv", tabular(30))
    with pytest.raises(AccessError):
        schema.dataset_summary({"dataset": "csv", "path": str(shared), "target": "y"})
    monkeypatch.setenv("FEDMOSAIC_DATA_ROOTS", str(tmp_path / "shared"))
    assert schema.dataset_summary({"dataset": "csv", "path": str(shared), "target": "y"})["samples"] == 30


def test_image_folder_with_download_on_creates_nothing_outside_the_data_directory(tmp_path, monkeypatch):
    from engine.data.datasets import vision_files

    monkeypatch.setattr(
        vision_files.urllib.request, "urlopen", lambda *a, **k: pytest.fail("no download may be attempted")
    )
    elsewhere = tmp_path / "anywhere" / "mnist"
    with pytest.raises(AccessError):
        schema.dataset_summary({"dataset": "mnist", "path": str(elsewhere), "download": True})
    assert not (tmp_path / "anywhere").exists()
    monkeypatch.setenv("FEDMOSAIC_DATA_ROOTS", str(tmp_path))  # readable, but not a download target
    with pytest.raises(AccessError, match="downloads dataset files only into its data directory"):
        schema.dataset_summary({"dataset": "mnist", "path": str(elsewhere), "download": True})
    assert not (tmp_path / "anywhere").exists()


def test_downloads_are_https_only():
    from engine.data.datasets import vision_files

    assert vision_files.FASHION_MNIST.base_url.startswith("https://")
    assert vision_files.MNIST.base_url.startswith("https://") and vision_files.CIFAR_URL.startswith(
        "https://"
    )
    with pytest.raises(OSError, match="plain http"):
        vision_files.download("http://example.org/x.gz", Path("/nonexistent/x.gz"), None)


def test_the_command_line_reads_the_paths_its_user_gives(tmp_path, capsys):
    data = write_csv(tmp_path / "mine" / "t.csv", tabular(60))
    config = tmp_path / "exp.json"
    config.write_text(json.dumps(csv_design(str(data))))
    rc, out, err = run_cli(capsys, "validate", str(config))
    assert rc == 0 and out.startswith("ok:"), err
    with pytest.raises(AccessError):  # the same config through the engine API the pages call
        schema.dataset_summary(csv_design(str(data))["data"])


def test_runs_keep_their_launchers_access_in_the_manager_threads(tmp_path):
    data = write_csv(tmp_path / "mine" / "t.csv", tabular(60))
    mgr = RunManager(Store(tmp_path / "r.db"), workers=1)
    try:
        with pytest.raises(ConfigError, match="outside the folders FedMosaic may read"):
            mgr.submit(csv_design(str(data)))
        assert mgr.store.list_runs() == []
        with trusted_paths():
            run_id = mgr.submit(csv_design(str(data)))
        assert mgr.wait(run_id, 300) == "finished"
    finally:
        mgr.shutdown()


# ---- tiny configs that explode ------------------------------------------------------------------
BOMB = """name: bomb
clients: [{name: c, count: 2}]
data:
  dataset: digits
  options:
    a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
    b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
    c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
    d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
    e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
    f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
    g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
"""


def test_a_yaml_alias_bomb_is_refused_by_validate_run_and_the_app(tmp_path, capsys):
    assert len(BOMB.encode()) < 620
    path = tmp_path / "bomb.yaml"
    path.write_text(BOMB)
    for command in ("validate", "run"):
        line = one_line_error(*run_cli(capsys, "--db", str(tmp_path / "r.db"), command, str(path))[::2])
        assert "expands to more than 20,000 values" in line
    with pytest.raises(ConfigError, match="aliases"):
        document.config_from_json(BOMB.encode())
    assert Store(tmp_path / "r.db").list_runs() == []


def test_padded_json_is_refused_by_size_and_never_stored(tmp_path, capsys):
    padded = digits_config(executor_options={"pad": "x" * 1_100_000})
    path = tmp_path / "big.json"
    path.write_text(json.dumps(padded))
    line = one_line_error(*run_cli(capsys, "--db", str(tmp_path / "r.db"), "run", str(path))[::2])
    assert "a config is at most 1 MB" in line
    with pytest.raises(ConfigError, match="at most 1 MB"):
        document.config_from_json(json.dumps(padded))
    store = Store(tmp_path / "r.db")
    with pytest.raises(ConfigError, match="a run stores at most 2 MB"):
        store.create_run({"name": "x", "pad": "y" * 2_100_000})
    assert store.list_runs() == []


# ---- runs stuck queued; validate passes what set-up refuses ---------------------------------------
def test_a_set_up_failure_is_stored_failed_with_its_message(tmp_path):
    path = write_csv(tmp_path / "t.csv", tabular(40, site=["a"] * 20 + ["b"] * 20))
    config = parse_config(
        csv_design(str(path), partition={"method": "natural", "column": "site"}, **{})
        | {"clients": [{"name": "c", "count": 3}]}
    )
    store = Store(tmp_path / "r.db")
    sim = Simulation(config, store=store, root=tmp_path)
    with trusted_paths(), pytest.raises(FedMosaicError):
        sim.run()
    row = store.get_run(sim.run_id)
    assert row["status"] == "failed" and "roster needs exactly 2 clients" in row["error"]


def test_a_run_that_ends_without_any_figure_is_a_failure(tmp_path, monkeypatch):
    monkeypatch.setattr(Simulation, "evaluate", lambda self, rnd, per_client: {})
    monkeypatch.setattr("engine.core.scoring.evaluate_clients", lambda *a, **k: {})
    store = Store(tmp_path / "r.db")
    sim = Simulation(parse_config(digits_config(rounds=1)), store=store)
    with pytest.raises(DataError, match="without any evaluation figure"):
        sim.run()
    assert store.get_run(sim.run_id)["status"] == "failed"


def _natural(tmp_path, values: list[str], n_clients: int) -> dict:
    path = write_csv(tmp_path / f"n{len(set(values))}.csv", tabular(len(values), site=values))
    return csv_design(str(path), partition={"method": "natural", "column": "site"}) | {
        "clients": [{"name": "c", "count": n_clients, "model": {"arch": "mlp", "hidden": 8}}]
    }


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("max_samples", "12 clients but only"),
        ("one_value", "has a single value"),
        ("many_values", "roster needs exactly 5000 clients"),
        ("six_rows", "5 clients but only 4 training samples"),
        ("test_fraction", "lower the test fraction"),
    ],
)
def test_validate_finds_what_set_up_would_refuse(tmp_path, case, expected):
    if case == "max_samples":
        design = digits_config(
            data={"dataset": "digits", "max_samples": 10}, clients=[{"name": "c", "count": 12}]
        )
    elif case == "one_value":
        design = _natural(tmp_path, ["a"] * 40, 2)
    elif case == "many_values":
        design = _natural(tmp_path, [f"s{i}" for i in range(5000)], 5)
    elif case == "six_rows":
        design = csv_design(str(write_csv(tmp_path / "six.csv", tabular(6))))
        design["clients"][0]["count"] = 5
    else:
        design = digits_config(data={"dataset": "digits", "test_fraction": 0.99})
    with trusted_paths():
        report = validate(parse_config(design), tmp_path)
    assert not report.ok and expected in " ".join(report.errors), report.errors


@pytest.mark.parametrize("workers", [0, "abc"])
def test_bad_workers_is_one_line_from_the_cli(tmp_path, capsys, workers):
    path = tmp_path / "w.json"
    path.write_text(json.dumps(digits_config(executor="threads", executor_options={"workers": workers})))
    assert "workers:" in one_line_error(*run_cli(capsys, "validate", str(path))[::2])


# ---- silently wrong -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "suffix"),
    [
        ('{"name": "a", "name": "b", "clients": [{"name": "c"}]}', ".json"),
        ("name: a\nname: b\nclients: [{name: c}]\n", ".yaml"),
    ],
)
def test_duplicate_keys_are_refused(tmp_path, capsys, text, suffix):
    path = tmp_path / f"dup{suffix}"
    path.write_text(text)
    assert 'the key "name" appears twice' in one_line_error(*run_cli(capsys, "validate", str(path))[::2])


def test_a_duplicate_csv_column_is_refused_not_renamed():
    with pytest.raises(DataError, match="names 'f1' more than once"):
        schema.inspect({"dataset": "csv", "path": schema.save_upload("d.csv", b"f1,f1,y\n1,2,0\n3,4,1\n")})


# ---- tracebacks from the CLI --------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        (
            "latin1.json",
            '{"name": "café", "clients": [{"name": "c"}]}'.encode("latin-1"),
            "is not UTF-8 text (byte 0xe9",
        ),
        ("deep.json", b"[" * 100_000 + b"]" * 100_000, "nested more than 24 levels"),
        (
            "python.yaml",
            b"!!python/object/apply:os.system ['touch /tmp/pwned']\n",
            "!!python/object/apply:os.system",
        ),
        ("recursive.yaml", b"a: &a [*a]\n", "cannot be recursive"),
        ("nan.json", b'{"name": "x", "rounds": NaN, "clients": [{"name": "c"}]}', "NaN is not a number"),
        ("list.json", b"[1, 2]", "must hold one object"),
        ("fifo.json", None, "not a regular file"),
    ],
)
def test_bad_config_files_are_one_line_errors(tmp_path, capsys, name, content, expected):
    path = tmp_path / name
    if content is None:
        os.mkfifo(path)
    else:
        path.write_bytes(content)
    assert expected in one_line_error(*run_cli(capsys, "validate", str(path))[::2])
    assert not Path("/tmp/pwned").exists()


def test_seed_ranges_say_what_is_wrong():
    with pytest.raises(ConfigError, match="holds 1,000,001 seeds, too many"):
        launching.parse_seeds("0-1000000")
    with pytest.raises(ConfigError, match="counts down"):
        launching.parse_seeds("5-2")


# ---- exports safe in a spreadsheet ----------------------------------------------------------------
PAYLOADS = ['=HYPERLINK("http://x")', "+1+1", "-2+3", "@SUM(A1)", "=cmd|' /C calc'!A0"]


def test_every_csv_export_neutralises_formulas(tmp_path, capsys):
    from bench.app_render import write_synthetic_run
    from engine.reporting import export

    store = Store(tmp_path / "r.db")
    ids = [
        write_synthetic_run(store, n_clients=2, n_rounds=2, name=p, tags=(p,), seed=i)
        for i, p in enumerate(PAYLOADS)
    ]
    with store.write() as db:
        db.execute("UPDATE clients SET name = ? WHERE client_id = 0", [PAYLOADS[0]])
        db.execute("UPDATE clients SET name = ? WHERE client_id = 1", ["\tsplit"])
    texts = {
        fmt: export.render(store, ids, fmt).data.decode() for fmt in export.FORMATS if fmt.endswith("csv")
    }
    rc, out, _ = run_cli(capsys, "--db", str(tmp_path / "r.db"), "summary", *ids)
    texts["summary stdout"] = out
    rc, _, _ = run_cli(
        capsys, "--db", str(tmp_path / "r.db"), "summary", *ids, "--out", str(tmp_path / "s.csv")
    )
    texts["summary --out"] = (tmp_path / "s.csv").read_text()
    for where, text in texts.items():
        frame = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
        cells = [str(c) for c in frame.columns] + [str(v) for v in frame.to_numpy().ravel()]
        bad = [
            c for c in cells if c[:1] in ("=", "+", "@", "\t", "\r") or (c.startswith("-") and not _number(c))
        ]
        assert not bad, (where, bad)
    assert all("'+1+1" in t for where, t in texts.items() if "summary" in where)  # kept, as text


def _number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def test_names_are_inert_markdown_and_plain_terminal_text(tmp_path, capsys):
    from engine.sanitize import markdown_plain

    shown = markdown_plain("![x](https://evil.example/p.png) [site](http://evil.example) <img src=x> $x$")
    assert "](" not in shown.replace("\\](", "") and "<img" not in shown.replace("\\<img", "")
    store = Store(tmp_path / "r.db")
    run_id = store.create_run(digits_config(), name="ok\x1b]8;;http://evil\x07link\x1b[2J")
    store.rename_run(run_id, "renamed\x1b[31m red")
    rc, out, _ = run_cli(capsys, "--db", str(tmp_path / "r.db"), "list")
    assert "\x1b" not in out and "renamed[31m red" in out


# ---- storage integrity --------------------------------------------------------------------------
def _damage(path: Path) -> bytes:
    data = bytearray(path.read_bytes())
    for offset in range(4096, len(data), 61):
        data[offset] ^= 0x5A
    path.write_bytes(bytes(data))
    return bytes(data)


@pytest.mark.parametrize("how", ["garbage", "pages"])
def test_a_damaged_database_is_named_and_never_written(tmp_path, capsys, how):
    db = tmp_path / "r.db"
    store = Store(db)
    for _ in range(3):
        store.create_run(digits_config(), status="finished")
    store.close()
    del store
    before = (
        db.write_bytes(b"not a database at all" * 200) and db.read_bytes()
        if how == "garbage"
        else _damage(db)
    )
    config = tmp_path / "c.json"
    config.write_text(json.dumps(digits_config(rounds=1)))
    for args in (
        ["list"],
        ["show", "abc"],
        ["export", "abc", "--out", str(tmp_path / "x.csv")],
        ["run", str(config)],
    ):
        line = one_line_error(*run_cli(capsys, "--db", str(db), *args)[::2])
        assert "is damaged" in line and "permission" not in line
    assert db.read_bytes() == before


def test_a_read_only_database_can_be_listed_and_exported_not_written(tmp_path, capsys, monkeypatch):
    from bench.app_render import write_synthetic_run

    db = tmp_path / "r.db"
    store = Store(db)
    run_id = write_synthetic_run(store, n_clients=2, n_rounds=2, name="kept")
    store.close()
    monkeypatch.setattr(
        "engine.tracking.storage._writable", lambda path: False
    )  # as root, chmod cannot show it
    before = db.read_bytes()
    rc, out, _ = run_cli(capsys, "--db", str(db), "list")
    assert rc == 0 and "kept" in out
    rc, out, _ = run_cli(capsys, "--db", str(db), "export", run_id, "--out", str(tmp_path / "x.csv"))
    assert rc == 0 and (tmp_path / "x.csv").read_text().startswith("round,")
    config = tmp_path / "c.json"
    config.write_text(json.dumps(digits_config(rounds=1)))
    assert "read-only" in one_line_error(*run_cli(capsys, "--db", str(db), "run", str(config))[::2])
    assert db.read_bytes() == before


def _dead_owner() -> str:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return f"{socket.gethostname()}|{proc.pid}|"


def test_list_and_show_mark_runs_of_dead_processes_interrupted_without_a_manager(tmp_path, capsys):
    db = tmp_path / "r.db"
    store = Store(db)
    run_id = store.create_run(digits_config(), status="running", owner=_dead_owner())
    rc, out, _ = run_cli(capsys, "--db", str(db), "show", run_id)
    assert rc == 0 and "[interrupted]" in out and "the process running it stopped" in out
    assert store.get_run(run_id)["status"] == "interrupted"


# ---- resume past a checkpoint that does not fit --------------------------------------------------
@pytest.mark.parametrize("damage", ["no_states", "wrong_shape", "other_clients"])
def test_resume_falls_back_past_a_checkpoint_that_loads_but_does_not_fit(tmp_path, damage):
    store = Store(tmp_path / "r.db")
    config = parse_config(
        digits_config(
            rounds=5,
            checkpoint_every=2,
            clients=[{"name": "c", "count": 2, "model": {"arch": "mlp", "hidden": 8}}],
        )
    )
    sim = Simulation(config, store=store)
    sim.on_round = lambda record: sim.cancel.set() if record.round == 4 else None
    sim.run()  # cancelled after round 4: a run not finished keeps its two newest checkpoints
    newest, older = store.checkpoints(sim.run_id)[:2]
    blob = torch.load(newest["path"], weights_only=True)
    if damage == "no_states":
        blob.pop("states")
    elif damage == "wrong_shape":
        state = blob["states"]["0"]["model"]
        name = next(iter(state))
        state[name] = torch.zeros(3, 3)
    else:
        blob["states"]["7"] = blob["states"].pop("1")
    torch.save(blob, newest["path"])
    store.update_run(sim.run_id, status="interrupted")
    again = Simulation(config, store=store, run_id=sim.run_id)
    again.run(resume=True)
    row = store.get_run(sim.run_id)
    events = store.events(sim.run_id)["message"].tolist()
    assert row["status"] == "finished" and row["current_round"] == 5
    assert any("does not fit this run" in m for m in events)
    assert any(m == f"resumed from the checkpoint of round {older['round']}" for m in events)


def test_names_in_charts_are_text_not_plotly_markup():
    from engine.reporting import charts

    link = "<a href='http://evil.test'>click</a>"
    ((label, _),) = charts.series_groups(["r1"], [{"id": "r1", "name": link}])
    assert "<a" not in label and "&lt;a href" in label
    client_df = pd.DataFrame(
        {"run_id": "r1", "round": [1, 2], "client_id": 0, "key": "local_acc", "value": [0.5, 0.6]}
    )
    roster = pd.DataFrame([{"run_id": "r1", "client_id": 0, "name": link, "arch": "mlp", "join_round": 1}])
    figure = charts.client_curves(client_df, "local_acc", roster, run_id="r1")
    shown = json.dumps(figure.to_plotly_json(), default=str)
    assert "<a href" not in shown and "&lt;a href" in shown
