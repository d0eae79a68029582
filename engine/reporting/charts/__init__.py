"""Plotly figures of runs, built from the database's tables (no streamlit: the pages, the HTML
report and notebooks share them). :mod:`.style` holds the one colour language and the charts'
words, :mod:`.runs` the run-level charts, :mod:`.clients` the per-client charts of one run,
:mod:`.timeline` its participation, round timeline and catch-up; every
public name is available here (``charts.curves``, ``charts.metric_label``).

Inputs are the :class:`engine.tracking.storage.Store` frames: ``round_df`` from ``store.round_metrics(ids)``
(long: ``run_id, round, key, value``; a wide table with a ``run_id`` and one column per metric
works too), ``client_df`` from ``store.client_metrics(ids)``, ``roster`` from
``store.clients(ids)``, and ``runs`` from ``store.list_runs(...)`` (rows with ``id, name,
group_id, variant, seed``) or a mapping ``run_id -> label``.

Seeds of one setting (runs of one sweep ``group_id`` with the same ``variant``) are drawn as one
line, their mean, with a band of +-1 standard deviation (``ddof=1``) across seeds: one seed says
little about a federated method, whose result moves with the data split and the initialisation.

One colour language, defined in :mod:`.style` and nowhere else: a strategy has one colour across
every chart of a page (``local`` grey, ``centralized`` near-black, the others a fixed colour each,
unique on a page; when runs of one strategy appear as different settings, each setting gets its
own colour), and an architecture (or device tier) has one colour across the whole app. Every line
carries its name in the legend and on hover: two clients of one architecture are two shades of its
colour, each named.
"""

from __future__ import annotations

from engine.reporting.charts.clients import (  # noqa: F401 - the charts' public names
    client_curves,
    client_heatmap,
    fairness,
    final_client_bars,
    final_values,
)
from engine.reporting.charts.runs import (  # noqa: F401 - the charts' public names
    LOSS_KEYS,
    available_metrics,
    communication,
    curves,
    gains,
    losses,
)
from engine.reporting.charts.style import (  # noqa: F401 - the charts' public names
    ARCH_COLORS,
    GAIN,
    LOSS,
    PALETTE,
    REFERENCE_COLORS,
    TIER_COLORS,
    arch_color,
    group_color,
    headline_label,
    metric_label,
    run_colors,
    series_colors,
    series_groups,
    short_label,
    wide_rounds,
)
from engine.reporting.charts.timeline import (  # noqa: F401 - the charts' public names
    TIME_KEYS,
    catch_up,
    client_time_key,
    participation,
    participation_states,
    round_timeline,
)
