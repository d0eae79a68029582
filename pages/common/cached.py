"""Engine answers that depend only on the design they are given, kept across reruns and sessions.

A page reruns on every click, and while runs train beside the server the CPU is scarce: checking a
design (parsing, the data split's preview, each strategy's compatibility) cost ~0.1-0.3 s of
every Launch, Clients and Data rerun although the design had not changed. These wrappers ask the
engine once per distinct design (``st.cache_data`` keys on the design's content) and return a copy.
A data file read by a check is re-read after ``ttl`` seconds at most.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from engine.design import checks, compatibility, split

_CACHE = {"show_spinner": False, "max_entries": 64, "ttl": 300}


@st.cache_data(**_CACHE)
def design_problems(design: dict[str, Any]) -> list[str]:
    """:func:`engine.design.checks.design_problems`."""
    return checks.design_problems(design)


@st.cache_data(**_CACHE)
def design_warnings(design: dict[str, Any]) -> list[str]:
    """:func:`engine.design.checks.design_warnings`."""
    return checks.design_warnings(design)


@st.cache_data(**_CACHE)
def client_issues(design: dict[str, Any]) -> dict[int, list[str]]:
    """:func:`engine.design.checks.client_issues`."""
    return checks.client_issues(design)


@st.cache_data(**_CACHE)
def strategies(design: dict[str, Any]) -> list[dict[str, Any]]:
    """:func:`engine.design.compatibility.strategies`."""
    return compatibility.strategies(design)


@st.cache_data(**_CACHE)
def primary_preview(design: dict[str, Any]) -> tuple[str, str] | None:
    """:func:`engine.design.split.primary_preview`."""
    return split.primary_preview(design)
