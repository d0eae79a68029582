"""Config validation: each bad input gives a message naming the field and the fix."""

from __future__ import annotations

import json

import pytest
from conftest import digits_config

from engine.config import config_schema, load_config, parse_config
from engine.errors import ConfigError
from engine.validate import check, validate


def client(**kw):
    return {**digits_config()["clients"][0], **kw}


def test_valid_config_expands_count_into_named_clients():
    cfg = parse_config(digits_config(clients=[client(name="h", count=3), client(name="solo", count=1)]))
    assert [c.name for c in cfg.roster()] == ["h-1", "h-2", "h-3", "solo"]
    assert all(c.count == 1 for c in cfg.roster())


def test_duplicate_names_are_made_unique():
    cfg = parse_config(digits_config(clients=[client(name="a", count=1), client(name="a", count=1)]))
    names = [c.name for c in cfg.roster()]
    assert len(set(names)) == 2


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"clients": [client(lr=-0.1)]}, "clients.0.lr"),
        ({"clients": []}, "roster is empty"),
        ({"clients": [client(model={"arch": "perceptron"})]}, "valid architecture names: "),
        ({"clients": [client(model={"arch": "mlp", "hidden": 0})]}, "hidden"),
        ({"strategy": {"name": "fedmagic"}}, "valid strategy names: "),
        ({"clients": [client(device="cuda:7")]}, "device 'cuda:7' is not available"),
        ({"clients": [client(optimizer="rmsprop")]}, "clients.0.optimizer"),
        ({"clients": [client(preprocessing="whiten")]}, "valid: none, standardize"),
        ({"rounds": 0}, "rounds"),
        ({"fraction": 1.5}, "fraction"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_bad_input_names_the_field(change, needle):
    with pytest.raises(ConfigError) as err:
        parse_config(digits_config(**change))
    assert needle in str(err.value)


def test_unknown_arch_lists_every_valid_name():
    with pytest.raises(ConfigError) as err:
        parse_config(digits_config(clients=[client(model={"arch": "nope"})]))
    for name in ("mlp", "cnn", "gru", "lstm", "transformer", "resnet", "cnn1d"):
        assert name in str(err.value)


def test_strategy_params_are_validated_and_defaults_filled():
    with pytest.raises(ConfigError, match="epochs_per_round"):
        parse_config(digits_config(strategy={"name": "centralized", "epochs_per_round": 0}))
    cfg = parse_config(digits_config(strategy={"name": "centralized"}))
    assert cfg.strategy.params() == {"epochs_per_round": 1}


def test_architecture_that_cannot_read_the_data_is_refused_before_running():
    cfg = parse_config(digits_config(data={"dataset": "wine"}, clients=[client(model={"arch": "cnn"})]))
    report = validate(cfg)
    assert not report.ok
    assert any("cannot read tabular" in e and "mlp" in e for e in report.errors)


def test_fedavg_refuses_mixed_architectures_and_suggests_alternatives():
    cfg = parse_config(
        digits_config(clients=[client(name="a", count=1), client(name="b", count=1, model={"arch": "cnn"})])
    )
    with pytest.raises(ConfigError) as err:
        check(cfg)
    text = str(err.value)
    assert "clients 0 (a) and 1 (b)" in text and "fedavg needs one architecture" in text
    assert "fedavg_by_arch" in text


def test_load_config_reports_json_syntax_with_line(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"name": "x",\n "rounds": }')
    with pytest.raises(ConfigError, match="line 2"):
        load_config(bad)


def test_load_config_yaml_and_json_agree(tmp_path):
    import yaml

    data = digits_config()
    (tmp_path / "a.json").write_text(json.dumps(data))
    (tmp_path / "a.yaml").write_text(yaml.safe_dump(data))
    assert load_config(tmp_path / "a.json") == load_config(tmp_path / "a.yaml")


def test_schema_lists_public_field_names():
    schema = config_schema()
    for name in ("name", "seed", "rounds", "data", "clients", "strategy", "fraction", "eval_every"):
        assert name in schema["properties"]
    client_props = schema["$defs"]["ClientSpec"]["properties"]
    for name in (
        "name",
        "model",
        "optimizer",
        "lr",
        "epochs",
        "batch_size",
        "weight_decay",
        "device",
        "count",
    ):
        assert name in client_props


def test_unknown_executor_lists_the_valid_ones():
    with pytest.raises(ConfigError, match="valid executor names: auto, ray, sequential, threads, vectorized"):
        parse_config(digits_config(executor="gpu-farm"))


def test_strategy_parameters_are_checked_against_the_data_before_launch():
    cfg = parse_config(
        digits_config(
            data={"dataset": "wine", "partition": {"method": "iid"}},
            strategy={"name": "fml", "shared_model": {"arch": "cnn"}},
        )
    )
    report = validate(cfg)
    assert any("shared_model 'cnn' cannot read tabular" in e for e in report.errors)


def test_a_client_without_a_model_gets_the_same_full_default_as_an_explicit_mlp():
    implicit = parse_config(digits_config(clients=[{"name": "c"}])).clients[0].model
    explicit = parse_config(digits_config(clients=[{"name": "c", "model": {"arch": "mlp"}}])).clients[0].model
    assert implicit == explicit and set(implicit) > {"arch"}
