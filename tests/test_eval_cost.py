"""Scoring that costs less than training (issue #17): forward calls sized from the model's
activations (not only its input), clients with large kernels scored one at a time, and the global
test set scored on a fixed stratified sample between full scorings (``global_sample``,
``global_full_every``)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import digits_config

from engine import flops
from engine.config import parse_config
from engine.core import evaluation, training
from engine.core.evaluation import forward_many, rows_per_call, stratified_rows
from engine.core.simulation import Simulation
from engine.flops import sample_cost
from engine.models import InputSpec, build_model

SPEC = InputSpec("image", (1, 8, 8))


def models(arch: dict, n: int) -> tuple[torch.nn.Module, list[dict[str, torch.Tensor]]]:
    torch.manual_seed(0)
    built = [build_model(arch, SPEC, 16, 10) for _ in range(n)]
    return built[0].eval(), [{k: v.detach().clone() for k, v in m.state_dict().items()} for m in built]


def direct(template: torch.nn.Module, state: dict, x: torch.Tensor) -> torch.Tensor:
    template.load_state_dict(state)
    with torch.no_grad():
        return template(x)


@pytest.fixture
def calls(monkeypatch):
    """(clients, rows) of every forward call forward_many makes: vmap-ed calls through
    functional_call see one client's rows, so the stacked client count comes from _stack."""
    seen: list[tuple[int, int]] = []
    stacked = {"k": 1}
    stack, functional_call, predict = evaluation._stack, evaluation.functional_call, training.predict

    def spy_stack(states, device):
        stacked["k"] = len(states)
        return stack(states, device)

    def spy_call(model, params, args):
        seen.append((stacked["k"], len(args[0])))
        return functional_call(model, params, args)

    def spy_predict(forward, x, batch_size=2048):
        seen.extend((1, min(batch_size, len(x) - i)) for i in range(0, len(x), batch_size))
        return predict(forward, x, batch_size)

    monkeypatch.setattr(evaluation, "_stack", spy_stack)
    monkeypatch.setattr(evaluation, "functional_call", spy_call)
    monkeypatch.setattr(training, "predict", spy_predict)
    return seen


@pytest.mark.parametrize("loop_flops", [0, 10**15], ids=["one-by-one", "vmap"])
def test_both_paths_score_like_one_model_at_a_time_within_the_memory_budget(monkeypatch, calls, loop_flops):
    template, states = models({"arch": "cnn", "channels": 8}, 5)
    per_sample = sample_cost(template, SPEC.shape).activation_bytes
    monkeypatch.setattr(flops, "CHUNK_BYTES", 13 * per_sample)  # 13 rows a call: chunks clients and rows
    monkeypatch.setattr(evaluation, "LOOP_FLOPS", loop_flops)
    g = torch.Generator().manual_seed(1)
    shared = torch.rand(23, *SPEC.shape, generator=g)
    own = [torch.rand(n, *SPEC.shape, generator=g) for n in (3, 1, 6, 2, 5)]
    for xs in (shared, own):
        outs = forward_many(template, states, xs)
        for i, (state, out) in enumerate(zip(states, outs, strict=True)):
            x = xs if isinstance(xs, torch.Tensor) else xs[i]
            assert torch.allclose(out, direct(template, state, x), atol=1e-5)
    assert calls and all(k * rows <= 13 for k, rows in calls)  # never more activations than the budget
    assert any(k > 1 for k, _ in calls) == (loop_flops > 0)  # the vmap path batches clients, the other not


def test_large_kernels_are_scored_one_client_at_a_time(calls):
    template, states = models({"arch": "cnn", "channels": 32}, 3)  # ~0.66 MFLOP a sample
    x = torch.rand(40, *SPEC.shape)  # 26 MFLOP per client: above LOOP_FLOPS
    assert sample_cost(template, SPEC.shape).flops * len(x) > evaluation.LOOP_FLOPS
    forward_many(template, states, x)
    assert calls and all(k == 1 for k, _ in calls)


def test_rows_per_call_follows_the_activations_not_the_input():
    small = build_model({"arch": "mlp", "hidden": 16}, SPEC, 16, 10)
    wide = build_model({"arch": "cnn", "channels": 64}, SPEC, 16, 10)
    # the same input, but the CNN's feature maps are ~64x the input: far fewer rows per call
    assert rows_per_call(wide, SPEC.shape) * 16 < rows_per_call(small, SPEC.shape)
    assert (
        rows_per_call(wide, SPEC.shape) * sample_cost(wide, SPEC.shape).activation_bytes <= flops.CHUNK_BYTES
    )


def test_stratified_rows_keep_each_class_in_proportion():
    y = torch.as_tensor(np.repeat(np.arange(4), [500, 300, 150, 50]))
    rows = stratified_rows(y, 100, np.random.default_rng(0), "classification")
    counts = np.bincount(y.numpy()[rows], minlength=4)
    assert counts.tolist() == [50, 30, 15, 5] and len(set(rows.tolist())) == 100
    again = stratified_rows(y, 100, np.random.default_rng(0), "classification")
    assert np.array_equal(rows, again)
    rare = torch.as_tensor(np.repeat(np.arange(3), [990, 9, 1]))
    kept = np.bincount(
        rare.numpy()[stratified_rows(rare, 20, np.random.default_rng(0), "classification")], minlength=3
    )
    assert kept.sum() == 20 and kept.min() >= 1  # a rare class keeps a row
    assert stratified_rows(y, 1000, np.random.default_rng(0), "classification") is None
    target = torch.linspace(0, 1, 1000)
    picked = target[stratified_rows(target, 100, np.random.default_rng(0), "regression")]
    assert np.histogram(picked.numpy(), bins=10, range=(0, 1))[0].tolist() == [10] * 10


def test_the_global_set_is_sampled_between_full_scorings(tmp_path):
    config = parse_config(
        digits_config(rounds=4, global_sample=60, global_full_every=3, strategy={"name": "local"})
    )
    sim = Simulation(config, root=tmp_path)
    sim.run()
    full = float(len(sim.federation.global_test))
    assert full > 60
    assert [r.metrics["global_rows"] for r in sim.history] == [
        60.0,
        60.0,
        full,
        full,
    ]  # round 3, and the last
    # the last round is scored on every row: the same figures as scoring the whole set directly
    model = sim.build(sim.clients[0].spec.model)
    for c in sim.clients:
        out = direct(model, sim.states[c.id]["model"], sim.federation.global_test.x)
        expected = training.metrics("classification", out, sim.federation.global_test.y)
        assert sim.history[-1].clients[c.id]["global_acc"] == pytest.approx(expected["acc"])


def test_without_a_sample_every_round_scores_every_row(tmp_path):
    sim = Simulation(parse_config(digits_config(rounds=2, global_sample=None)), root=tmp_path)
    sim.run()
    assert {r.metrics["global_rows"] for r in sim.history} == {float(len(sim.federation.global_test))}


def test_a_best_round_scored_on_the_sample_gets_whole_set_figures_at_the_next_full_scoring(tmp_path):
    """The best round is chosen on validation rows; its global test figures are the whole set's
    from the next full scoring on (here every client and the server keep round 1, a sampled round)."""
    config = parse_config(digits_config(rounds=3, global_sample=60, global_full_every=3))
    sim = Simulation(config, root=tmp_path)
    sim._improved = lambda val, old: old is None  # keep the first evaluated round as the best
    sim.run()
    gx, gy = sim.federation.global_test.x, sim.federation.global_test.y
    model = sim.build(sim.clients[0].spec.model)
    last = sim.history[-1]
    assert last.metrics["best_round_mean"] == 1.0 and len(gy) > 60
    for c in sim.clients:
        kept = sim.best[c.id]
        expected = training.metrics("classification", direct(model, kept["model"], gx), gy)
        assert kept["round"] == 1 and kept["global_rows"] == len(gy)
        assert kept["scores"]["global_acc"] == pytest.approx(expected["acc"])
        assert last.clients[c.id]["best_global_acc"] == pytest.approx(expected["acc"])  # what pages read
    sampled = sim.history[0].clients[0]["best_global_acc"]  # what round 1 recorded, on 60 rows
    assert sampled != pytest.approx(sim.best[0]["scores"]["global_acc"])
    (server,) = sim.server_best.values()
    out = direct(model, server["model"], sim.federation.reference(gx))
    expected = training.metrics("classification", out, gy)
    assert server["round"] == 1 and last.metrics["best_server_acc"] == pytest.approx(expected["acc"])


def test_global_curves_mark_the_rounds_that_scored_every_row():
    import pandas as pd

    from engine.reporting import charts

    rows = [60, 60, 359, 60, 359]
    df = pd.DataFrame(
        {
            "run_id": "r",
            "round": range(1, 6),
            "global_acc_mean": [0.5, 0.6, 0.65, 0.7, 0.72],
            "local_acc_mean": [0.4] * 5,
            "global_rows": rows,
        }
    )
    (trace,) = charts.curves(df, "global_acc_mean").data
    assert list(trace.marker.symbol) == ["circle-open", "circle-open", "circle", "circle-open", "circle"]
    assert "60 of 359 rows" in trace.text[0] and "whole global test set (359 rows)" in trace.text[2]
    (local,) = charts.curves(df, "local_acc_mean").data  # local test splits are always scored whole
    assert local.marker.symbol is None and local.text is None
    (same,) = charts.curves(df.assign(global_rows=359), "global_acc_mean").data
    assert same.marker.symbol is None


def test_the_launch_form_names_the_scoring_cadence_in_words():
    from engine.design import forms

    titles = {s.name: s.title for s in forms.launch_fields()}
    assert titles["global_sample"] == "Global test sample (rows)"
    assert titles["global_full_every"] == "Whole global test set every (rounds)"
    assert titles["rounds"] == ""  # fields without a title keep their name, in words
