"""Engine answers that depend only on the design they are given, kept across reruns and sessions.

A page reruns on every click, and while runs train beside the server the CPU is scarce: checking a
design (parsing, the data split's preview, each strategy's compatibility) cost ~0.1-0.3 s of
every Launch, Clients and Advisor rerun although the design had not changed. These wrappers ask the
engine once per distinct design and return a copy. The key is the design as canonical JSON (a
string hashes in microseconds; ``st.cache_data`` walking the nested dict took ~20 ms a call). A
data file read by a check is re-read after ``ttl`` seconds at most.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import streamlit as st

from engine.design import checks, compatibility, split


def _key(design: dict[str, Any]) -> str:
    return json.dumps(design, sort_keys=True, default=str)


@st.cache_data(show_spinner=False, max_entries=256, ttl=300)
def _ask(name: str, key: str, _design: dict[str, Any]) -> Any:
    """``ASK[name](_design)``, once per ``(name, key)`` (``_design`` is not hashed: ``key`` is it)."""
    return ASK[name](_design)


ASK: dict[str, Callable[[dict[str, Any]], Any]] = {
    "design_problems": checks.design_problems,
    "design_warnings": checks.design_warnings,
    "client_issues": checks.client_issues,
    "strategies": compatibility.strategies,
    "primary_preview": split.primary_preview,
}


def design_problems(design: dict[str, Any]) -> list[str]:
    """:func:`engine.design.checks.design_problems`."""
    return _ask("design_problems", _key(design), design)


def design_warnings(design: dict[str, Any]) -> list[str]:
    """:func:`engine.design.checks.design_warnings`."""
    return _ask("design_warnings", _key(design), design)


def client_issues(design: dict[str, Any]) -> dict[int, list[str]]:
    """:func:`engine.design.checks.client_issues`."""
    return _ask("client_issues", _key(design), design)


def strategies(design: dict[str, Any]) -> list[dict[str, Any]]:
    """:func:`engine.design.compatibility.strategies`."""
    return _ask("strategies", _key(design), design)


def primary_preview(design: dict[str, Any]) -> tuple[str, str] | None:
    """:func:`engine.design.split.primary_preview`."""
    return _ask("primary_preview", _key(design), design)
