"""Shared helpers of the FedMosaic pages: the design being edited (session state + autosave),
the run manager and store, friendly error handling, and widgets generated from parameter models.

Only the script thread calls ``st.*``; the run manager's worker threads never see this module.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import streamlit as st

from engine.design import document, drafts, forms, launching, scenarios
from engine.errors import FedMosaicError
from engine.labels import for_page
from engine.reporting import results
from engine.sanitize import markdown_plain as plain  # noqa: F401 - names and messages as plain text
from engine.sanitize import safe_filename

log = logging.getLogger("fedmosaic.app")

STATUS_ICON = {
    "queued": "○",
    "running": "◐",
    "finished": "✓",
    "failed": "✗",
    "cancelled": "■",
    "interrupted": "⚠",
}
"""Status marks drawn with plain-text symbols (they render in table cells and without emoji fonts)."""
PAGES = {
    "home": "pages/home/home.py",
    "data": "pages/design/data.py",
    "clients": "pages/design/clients.py",
    "launch": "pages/design/launch.py",
    "advisor": "pages/design/advisor.py",
    "runs": "pages/results/runs.py",
    "results": "pages/results/results.py",
    "compare": "pages/results/compare.py",
    "predict": "pages/results/predict.py",
    "catalog": "pages/reference/catalog.py",
}
"""Each page's script, in the folder of its section of the navigation (``app.py``). No script sits
directly in ``pages/`` (see ``app.py`` on Streamlit's legacy multipage mode)."""


# ---- pages ------------------------------------------------------------------------------------
def enter_page() -> None:
    """Start a page (every page script's first call): the password gate, the design, the autosave
    offer."""
    from pages.common.gate import require_login

    require_login()
    init()
    offer_autosave()


# ---- the design (experiment being edited) ----------------------------------------------------
def init() -> None:
    """Make sure the session has a design: restored from the autosave named in the page address
    (``?draft=<id>``), else the quick-start template. Idempotent; every page calls it."""
    ss = st.session_state
    if "design" not in ss:
        sid = st.query_params.get("draft")
        saved = drafts.load_autosave(sid) if sid else None
        if saved is not None:
            ss.session_id, ss.design = sid, saved
        else:
            ss.session_id = sid if sid and drafts.is_session_id(sid) else drafts.new_session_id()
            ss.design = scenarios.new_design()
            if not sid:  # a new tab: offer the design last worked on in another one
                ss.autosave_offer = drafts.latest_autosave(exclude=ss.session_id)
        ss.design_version = 0
    if st.query_params.get("draft") != ss.session_id:
        st.query_params["draft"] = ss.session_id


def offer_autosave() -> None:
    """On a new tab, offer the design autosaved last in another tab (once: taking it or starting
    fresh dismisses it)."""
    offer = st.session_state.get("autosave_offer")
    if not offer:
        return
    import time as _time

    ago = max(0.0, _time.time() - float(offer["saved_at"]))
    when = (
        f"{ago / 60:.0f} min ago"
        if ago < 3600
        else f"{ago / 3600:.1f} h ago"
        if ago < 86400
        else _time.strftime("%Y-%m-%d %H:%M", _time.localtime(offer["saved_at"]))
    )
    with st.container(border=True):
        text, keep, fresh = st.columns([5, 1.3, 1], vertical_alignment="center")
        text.markdown(
            f":material/history: Continue **{offer['name']}**, the design you were working on "
            f"(autosaved {when})?"
        )
        if keep.button("Continue it", key="autosave.take", type="primary", width="stretch"):
            st.session_state.pop("autosave_offer", None)
            set_design(offer["design"], replace=True)
            st.rerun()
        if fresh.button("Start fresh", key="autosave.skip", width="stretch"):
            st.session_state.pop("autosave_offer", None)
            st.rerun()


def design() -> dict[str, Any]:
    """The design being edited (a config dict; may be invalid while editing)."""
    init()
    return st.session_state.design


def set_design(new: dict[str, Any], *, replace: bool = False) -> None:
    """Store a changed design and autosave it. ``replace``: a different experiment was loaded
    (template, draft, import, fork), so every design widget is recreated from it."""
    init()
    ss = st.session_state
    changed = document.fingerprint(new) != document.fingerprint(ss.design)
    ss.design = new
    if replace:
        ss.design_version = ss.get("design_version", 0) + 1
    if changed or replace:
        try:
            drafts.autosave(ss.session_id, new)
        except FedMosaicError as exc:
            st.toast(f"Autosave failed: {exc}", icon=":material/warning:")


def key(name: str) -> str:
    """A widget key tied to the current design version."""
    return f"{name}@{st.session_state.get('design_version', 0)}"


# ---- engine objects ---------------------------------------------------------------------------
@st.cache_resource(show_spinner=False)
def _manager(db_path: str) -> Any:
    return launching.manager(db_path)


def manager() -> Any:
    """The process-wide run manager of the configured database (one per server process and
    database, shared by every session).

    :raises FedMosaicError: the database cannot be opened.
    """
    from engine.tracking.storage import default_db_path

    return _manager(str(default_db_path()))


def manager_or_stop() -> Any:
    """The run manager, or an error in the page and the end of the script when the database
    cannot be opened."""
    mgr = None
    with guard("opening the database"):
        mgr = manager()
    if mgr is None:
        st.stop()
    return mgr


def store() -> Any:
    """The database the run manager writes to."""
    return manager().store


# ---- errors -----------------------------------------------------------------------------------
@contextmanager
def guard(what: str = "") -> Iterator[None]:
    """Show a user mistake as ``st.error`` with what to change, and a bug as a short message with
    the details in the server log; never a traceback in the page."""
    try:
        yield
    except FedMosaicError as exc:
        st.error(plain(f"{what + ': ' if what else ''}{for_page(str(exc))}"), icon=":material/error:")
    except Exception as exc:
        if _is_control_flow(exc):
            raise
        log.exception("unexpected error%s", f" ({what})" if what else "")
        st.error(
            plain(
                f"Something went wrong{' while ' + what if what else ''}: {type(exc).__name__}: {exc}. "
                f"The details are in the server log; please report it."
            ),
            icon=":material/error:",
        )


def _is_control_flow(exc: BaseException) -> bool:
    """Streamlit's rerun/stop/switch-page signals travel as exceptions: let them through."""
    name = type(exc).__name__
    return name in ("RerunException", "StopException", "ScriptControlException") or type(
        exc
    ).__module__.startswith("streamlit.runtime.scriptrunner")


def show_problems(problems: list[str], title: str = "Fix these before launching") -> None:
    """A compact error box listing problems."""
    if problems:
        st.error(
            f"**{title}:**\n" + "\n".join(f"- {plain(for_page(p))}" for p in problems),
            icon=":material/error:",
        )


# ---- generated widgets ------------------------------------------------------------------------
def field_widget(
    spec: forms.FieldSpec,
    value: Any,
    widget_key: str,
    *,
    container: Any = None,
    label: str | None = None,
    help_suffix: str = "",
) -> Any:
    """One widget for a :class:`~engine.design.forms.FieldSpec`; returns the entered value."""
    c = container or st
    label = label or spec.title or spec.name.replace("_", " ").capitalize()
    help_ = (spec.description or "") + help_suffix
    current = spec.default if value is None and not spec.optional else value
    if spec.kind == "bool":
        return c.checkbox(label, value=bool(current), key=widget_key, help=help_ or None)
    if spec.kind == "choice":
        options = list(spec.choices)
        index = options.index(current) if current in options else 0
        return c.selectbox(label, options, index=index, key=widget_key, help=help_ or None)
    if spec.kind in ("int", "float"):
        is_int = spec.kind == "int"
        lo, hi = spec.minimum, spec.maximum
        if is_int:
            lo = None if lo is None else int(math.floor(lo) + (1 if spec.exclusive_min else 0))
            hi = None if hi is None else int(math.ceil(hi) - (1 if spec.exclusive_max else 0))
        if spec.optional:
            text = c.text_input(
                label,
                value="" if current is None else str(current),
                key=widget_key,
                help=(help_ + " (leave empty for none)").strip(),
                placeholder="none" if spec.default is None else f"default {spec.default}",
            )
            if not text.strip():
                return None
            try:
                number = int(text) if is_int else float(text)
            except ValueError:
                c.error(f"{label}: '{text}' is not a {'whole ' if is_int else ''}number")
                return current
            problem = spec.check(number)
            if problem:
                c.error(f"{label} {problem}")
            return number
        current = (int(current) if is_int else float(current)) if current is not None else (lo or 0)
        if lo is not None and current < lo:
            current = lo
        if hi is not None and current > hi:
            current = hi
        step = 1 if is_int else _float_step(current)
        fmt = None if is_int else _float_format(current)
        return c.number_input(
            label,
            min_value=lo if is_int else (float(lo) if lo is not None else None),
            max_value=hi if is_int else (float(hi) if hi is not None else None),
            value=current,
            step=step,
            format=fmt,
            key=widget_key,
            help=help_ or None,
        )
    if spec.kind == "text":
        text = c.text_input(
            label, value="" if current is None else str(current), key=widget_key, help=help_ or None
        )
        return None if (spec.optional and not text.strip()) else text
    raw = c.text_input(
        label,
        value=json.dumps(current) if current is not None else "",
        key=widget_key,
        help=(help_ + " (JSON)").strip(),
    )
    if not raw.strip():
        return None
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        c.error(f'{label}: not valid JSON; write e.g. [1, 2] or {{"a": 1}}')
        return current


def _float_step(value: float) -> float:
    if value == 0:
        return 0.01
    magnitude = 10 ** math.floor(math.log10(abs(value)))
    return float(magnitude / 10 if abs(value) / magnitude < 2 else magnitude)


def _float_format(value: float) -> str:
    if value == 0:  # a zero default (weight decay, momentum): any small value typed shows as typed
        return "%g"
    if abs(value) < 0.001:
        return "%.2e"
    if abs(value) < 0.1:
        return "%.4f"
    return "%.3f"


def params_form(
    specs: list[forms.FieldSpec],
    values: dict[str, Any],
    prefix: str,
    *,
    columns: int = 3,
    container: Any = None,
) -> dict[str, Any]:
    """Widgets for every field, laid out in ``columns``; returns ``{name: value}`` (only
    non-``None`` values, so defaults apply to the rest)."""
    out: dict[str, Any] = {}
    if not specs:
        return out
    parent = container or st
    cols = parent.columns(min(columns, len(specs)))
    for i, spec in enumerate(specs):
        value = values.get(spec.name, spec.default)
        v = field_widget(spec, value, key(f"{prefix}.{spec.name}"), container=cols[i % len(cols)])
        if v is not None:
            out[spec.name] = v
    return out


# ---- small display helpers --------------------------------------------------------------------
def status_label(status: str) -> str:
    """``✓ finished`` etc."""
    return f"{STATUS_ICON.get(status, '•')} {status}"


def fmt_metric(key: str | None, value: float | None) -> str:
    """``accuracy 0.912`` / ``R² 0.71`` style text."""
    if key is None or value is None:
        return "—"
    return f"{results.headline_label(key)}: {value:.3f}"


def open_run(run_id: str) -> None:
    """Go to the Results page of one run."""
    st.session_state["results_run"] = run_id
    st.switch_page(
        PAGES["results"], query_params={"run": run_id, "draft": st.session_state.get("session_id", "")}
    )


def goto(page: str) -> None:
    """Switch page, keeping the draft id in the address."""
    st.switch_page(PAGES[page], query_params={"draft": st.session_state.get("session_id", "")})


def on_click(func: Callable[..., Any], *args: Any) -> Callable[[], None]:
    """A button callback that runs ``func(*args)`` and keeps errors for the next render."""

    def run() -> None:
        try:
            func(*args)
        except FedMosaicError as exc:
            st.session_state["_flash_error"] = str(exc)

    return run


def flash() -> None:
    """Show (once) a message left by a callback or a previous page."""
    for k, show in (("_flash_error", st.error), ("_flash_success", st.success), ("_flash_info", st.info)):
        msg = st.session_state.pop(k, None)
        if msg:
            show(msg)


def flash_later(message: str, kind: str = "success") -> None:
    """Keep a message for the next render (e.g. across ``st.switch_page``)."""
    st.session_state[f"_flash_{kind}"] = message


# ---- drafts and config files (sidebar and Home) ------------------------------------------------
def drafts_panel(prefix: str, columns: bool = False) -> None:
    """Save the design as a named draft, open or delete one, export it as JSON, import a JSON
    config. ``prefix`` keeps the widget keys of several copies apart."""
    current = design()
    parts = st.columns(3) if columns else [st.container(), st.container(), st.container()]
    with parts[0]:
        name = st.text_input(
            "Draft name", value=current.get("name", "experiment"), key=f"{prefix}.draft_name"
        )
        if st.button("Save draft", key=f"{prefix}.save", icon=":material/save:", width="stretch"):
            with guard("saving the draft"):
                drafts.save_draft(name, current)
                st.toast(f"Saved draft '{plain(name)}'", icon=":material/save:")
    with parts[1]:
        saved = drafts.list_drafts()
        if saved:
            labels = {d["key"]: f"{d['name']} ({d['dataset']}, {d['clients']} clients)" for d in saved}
            pick = st.selectbox("Saved drafts", list(labels), format_func=labels.get, key=f"{prefix}.pick")
            a, b = st.columns(2)
            if a.button("Open", key=f"{prefix}.load", width="stretch"):
                with guard("opening the draft"):
                    set_design(drafts.load_draft(pick), replace=True)
                    st.rerun()
            if b.button("Delete", key=f"{prefix}.delete", width="stretch"):
                drafts.delete_draft(pick)
                st.rerun()
        else:
            st.caption("No saved drafts yet.")
    with parts[2]:
        st.download_button(
            "Export JSON config",
            lambda: document.config_json(current),
            key=f"{prefix}.export",
            file_name=safe_filename(f"{current.get('name', 'experiment')}.json"),
            mime="application/json",
            width="stretch",
            on_click="ignore",
            icon=":material/download:",
        )
        upload = st.file_uploader(
            "Import a JSON config", type=["json", "yaml", "yml"], key=f"{prefix}.import"
        )
        if upload is not None and st.session_state.get("_imported") != upload.file_id:
            st.session_state["_imported"] = upload.file_id
            with guard("importing the config"):
                set_design(document.config_from_json(upload.getvalue()), replace=True)
                flash_later(f"Imported {upload.name}.", "success")
                st.rerun()
