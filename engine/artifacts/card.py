"""The model card (``README.md``) written beside every kept model: what it is, the data it learnt
from, its place in the roster, the strategy and rounds, its figures with their references, and the
privacy settings when the run had any. Written from the model's ``config.json`` alone, so a
downloaded folder explains itself. Names from users are made inert Markdown
(:func:`engine.sanitize.markdown_plain`)."""

from __future__ import annotations

import json
from typing import Any

from engine.sanitize import markdown_plain

SCOPES = (
    ("local_", "its own test split"),
    ("global_", "the global test set"),
    ("val_", "its validation split"),
    ("ref_local_", "a predictor that ignores the input, on its own test split"),
    ("ref_global_", "a predictor that ignores the input, on the global test set"),
)
WHAT = {
    "model": "a complete model: it predicts",
    "body": "the shared body (feature extractor) only",
    "head": "the shared head (classifier on the representation) only",
    "prototypes": "the global class prototypes (mean representation per class)",
}


def _fmt(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def metrics_table(metrics: dict[str, Any]) -> list[str]:
    """Rows ``| figure | on | value |`` grouped by where they were measured, references last."""
    by_scope: dict[str, list[str]] = {p: [] for p, _ in SCOPES}
    plain = []
    for key in sorted(metrics):
        scope = max((p for p, _ in SCOPES if key.startswith(p)), key=len, default=None)
        (by_scope[scope] if scope else plain).append(key)
    rows = []
    for prefix, where in SCOPES:
        rows += [f"| {_label(k)} | {where} | {_fmt(metrics[k])} |" for k in by_scope[prefix]]
    rows += [
        f"| {_label(k)} | the global test set (server preprocessing) | {_fmt(metrics[k])} |" for k in plain
    ]
    return rows


def _label(key: str) -> str:
    """A figure's name in words (:func:`engine.core.metrics.base_metric`), else its key."""
    from engine.core.metrics import base_metric

    metric = base_metric(key)
    return metric.label if metric is not None else key


def render(config: dict[str, Any]) -> str:
    """The model card of one kept model, from its ``config.json``."""
    run = config.get("run", {})
    client = config.get("client")
    part = config.get("part", "model")
    strategy = markdown_plain(run.get("strategy", ""))
    if client:
        title = f"{markdown_plain(client['name'])} (client {client['position']}) - {strategy}"
        who = (
            f"Client **{markdown_plain(client['name'])}**, position {client['position']} of "
            f"{run.get('n_clients')} in the roster ({markdown_plain(client.get('arch', ''))}; "
            f"{client.get('n_train')} training and {client.get('n_test')} test samples). This is the model "
            f"the client would use: how {strategy} evaluates it."
        )
    else:
        title = f"{markdown_plain(config['name'])} - {strategy}"
        who = f"What the federation shares under {strategy}: {WHAT.get(part, part)}."
    which = config.get("which")
    round_text = (
        f"weights of round {config.get('round')}, the client's best validation round"
        if which == "best"
        else f"weights of round {config.get('round')}, the last completed round"
    )
    lines = [
        f"# {title}",
        "",
        who,
        "",
        f"- Kept: {round_text} ({run.get('rounds_done')} of {run.get('rounds')} "
        f"rounds done; run {markdown_plain(run.get('status', ''))})",
        f"- Run: {markdown_plain(run.get('name', ''))} (`{markdown_plain(run.get('id', ''))}`), seed "
        f"{run.get('seed')}",
        f"- Strategy: {strategy} {markdown_plain(json.dumps(run.get('strategy_params') or {}))}",
    ]
    if config.get("note"):
        lines.append(f"- Note: {markdown_plain(config['note'])}")
    lines += [
        "",
        "## Data",
        "",
        f"- Dataset: {markdown_plain(run.get('dataset', ''))}",
        f"- Task: {config.get('task')}",
    ]
    target = config.get("target") or {}
    if target.get("name"):
        lines.append(f"- Target: {markdown_plain(target['name'])}")
    if config.get("task") == "classification":
        lines.append(
            "- Classes (label encoding, output order): "
            f"{markdown_plain(', '.join(config.get('classes', [])))}"
        )
    else:
        units = f" in {markdown_plain(target['units'])}" if target.get("units") else ""
        lines.append(
            f"- Outputs are standardised: value{units} = output x {target.get('std'):.6g} + "
            f"{target.get('mean'):.6g}"
        )
    inp = config.get("input", {})
    lines.append(f"- Input: {inp.get('kind')} {'x'.join(str(s) for s in inp.get('shape', []))}")
    schema = config.get("schema", {})
    if schema.get("form") == "table":
        cols = ", ".join(f"{markdown_plain(c['name'])} ({c['type']})" for c in schema.get("columns", [])[:40])
        lines.append(f"- Columns it reads: {cols}{' ...' if len(schema.get('columns', [])) > 40 else ''}")
    elif schema.get("readable") is False:
        lines.append(f"- Predicting from new rows: not supported ({markdown_plain(schema.get('why', ''))})")
    lines.append(
        "- Preprocessing: "
        f"{markdown_plain((client or {}).get('preprocessing') or 'the server models reference')}, statistics "
        f"{markdown_plain(config.get('statistics', ''))} (fitted values in preprocessing.safetensors)"
    )
    if part == "model":
        metrics = config.get("metrics") or {}
        at = config.get("metrics_round")
        lines += ["", "## Figures", ""]
        if metrics:
            lines += [
                f"At round {at}, beside what a predictor that ignores the input reaches (the reference):",
                "",
                "| figure | on | value |",
                "|---|---|---|",
                *metrics_table(metrics),
            ]
        else:
            lines.append("No figures were recorded for these weights.")
    lines += ["", "## Privacy", ""]
    privacy = config.get("privacy")
    if privacy:
        for key, value in privacy.items() if isinstance(privacy, dict) else [("settings", privacy)]:
            lines.append(f"- {markdown_plain(key)}: {markdown_plain(json.dumps(value))}")
    else:
        lines.append("No privacy mechanism was configured for this run.")
    name = markdown_plain((client or {}).get("name") or config.get("name", ""))
    name = f'"{name}"' if " " in name else name
    lines += [
        "",
        "## Files",
        "",
        "- `model.safetensors`: the weights"
        + (
            " (tensors under `rule.` are what the prediction rule needs)"
            if config.get("rule") != "head"
            else ""
        ),
        "- `preprocessing.safetensors`: fill (missing values), keep (blanked categories), center and scale",
        "- `config.json`: architecture, input, label encoding, schema and figures",
        "",
        "## Use",
        "",
        "```bash",
        f"python -m engine predict {markdown_plain(run.get('id', ''))} --client {name} --which "
        f"{config.get('which', 'final')} --input new.csv --out predictions.csv",
        "```",
        "",
    ]
    return "\n".join(lines)
