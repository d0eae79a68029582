"""Strict configs: every parameter dict is checked by the model its dataset, partitioner, executor
or strategy owns, so a typo is refused with the valid names instead of being ignored."""

from __future__ import annotations

import pytest
from conftest import digits_config

from engine.config import parse_config
from engine.errors import ConfigError
from engine.executors import EXECUTORS, make_executor


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        (
            {"data": {"dataset": "traffic", "options": {"citys": 3}}},
            r"options of dataset 'traffic': citys: unknown name; valid names: cities, days",
        ),
        ({"data": {"dataset": "digits", "options": {"cities": 3}}}, r"dataset 'digits' takes no options"),
        (
            {"data": {"dataset": "digits", "partition": {"method": "dirichlet", "alfa": 0.3}}},
            r"partition 'dirichlet': alfa: unknown name; valid names: alpha",
        ),
        (
            {"executor": "threads", "executor_options": {"wrkers": 2}},
            r"executor 'threads' options: wrkers: unknown name; valid names: workers",
        ),
        (
            {"executor_options": {"workers": 2}},
            r"executor 'sequential' options: workers: unknown name; nothing",
        ),
        ({"executor": "threads", "executor_options": {"workers": 0}}, r"workers: Input should be greater"),
        (
            {"executor": "threads", "executor_options": {"workers": "abc"}},
            r"workers: Input should be a valid integer",
        ),
        (
            {"executor": "ray", "executor_options": {"ray_address": "http://x; rm -rf /"}},
            r"ray_address: use local",
        ),
        (
            {"executor": "ray", "executor_options": {"init_options": {"runtime_env": {"pip": ["evil"]}}}},
            r"init_options.runtime_env: unknown name; valid names: num_cpus",
        ),
        (
            {"strategy": {"name": "fedprox", "muu": 0.1}},
            r"strategy 'fedprox': muu: unknown name; valid names: mu",
        ),
        (
            {"data": {"dataset": "digits", "bogus": 1}},
            r"data.bogus: unknown name; valid names: dataset, partition",
        ),
        ({"name": "run\x1b[31m red"}, r"name: names are plain text"),
    ],
)
def test_typos_and_bad_values_are_refused_naming_the_valid_choice(changes, expected):
    with pytest.raises(ConfigError, match=expected):
        parse_config(digits_config(**changes))


def test_valid_options_are_kept_as_given_with_their_types():
    config = parse_config(
        digits_config(
            data={"dataset": "traffic", "options": {"cities": "3"}},
            executor="threads",
            executor_options={"workers": "3"},
        )
    )
    assert config.data.options == {"cities": 3}
    assert config.executor_options == {"workers": 3}


def test_every_executor_owns_a_params_model_and_builds_from_it():
    for name, cls in EXECUTORS.items():
        assert cls.Params.model_config.get("extra") == "forbid", name
    executor = make_executor("threads", {"workers": 3})
    try:
        assert executor.requested == 3
    finally:
        executor.close()
    with pytest.raises(ConfigError, match="workers: Input should be greater"):
        make_executor("threads", {"workers": 0})
