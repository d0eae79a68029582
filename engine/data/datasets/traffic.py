"""``traffic``: synthetic hourly road traffic in several cities, each with its own pattern and
scale - a natural federation (one client per city) that works offline.

Each city draws its own world from ``options.seed``: peak volume (scale), road capacity, a
commuter profile (morning and evening peaks at city-specific hours and heights, a midday base), a
weekend factor, a climate (how often it rains, mean temperature) and an incident rate. Hour by
hour, demand follows the daily and weekly cycles, a slow seasonal drift and autocorrelated noise;
rain (a two-state Markov chain) lowers demand a little and capacity more; incidents (Poisson,
lasting 1-4 hours) cut capacity. Observed volume saturates at the effective capacity, speed
follows the BPR volume-delay curve (Bureau of Public Roads 1964), and the congestion class is the
demand/capacity ratio: free (< 0.5), busy (< 0.8) or jammed.

Two forms of the same task (``options.form``), predicting the next hour:

- ``sequence``: the past ``window`` hours of 8 signals (volume in thousands of vehicles/hour,
  speed index, rain, temperature, incident, hour sin/cos, weekend) -> input ``(window, 8)``.
- ``tabular``: 12 features of the current hour with lags (volume now, 1 h and 24 h ago, ...).

``options.target`` is ``congestion`` (3 classes) or ``volume`` (regression, thousands of
vehicles/hour). ``Dataset.columns["city"]`` names each sample's city, for the natural partition.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from engine.data.base import DATASETS, Dataset, DatasetSource, as_tensor_x
from engine.data.config import DataConfig
from engine.errors import ConfigError, validation_problems
from engine.models.base import InputSpec

CITY_NAMES = [
    "Avalon",
    "Brightwater",
    "Cinderford",
    "Dunmere",
    "Eastwick",
    "Fairhaven",
    "Glenrock",
    "Highbridge",
    "Ironvale",
    "Juniper",
    "Kingsport",
    "Larkspur",
]
CLASSES = ["free", "busy", "jammed"]
SEQUENCE_FEATURES = ["volume", "speed", "rain", "temperature", "incident", "hour_sin", "hour_cos", "weekend"]
TABULAR_FEATURES = [
    "hour_sin",
    "hour_cos",
    "weekday",
    "weekend",
    "rain",
    "temperature",
    "incident",
    "volume",
    "volume_lag1",
    "volume_lag24",
    "speed",
    "volume_mean24",
]


class TrafficOptions(BaseModel):
    """``data.options`` of the traffic dataset."""

    model_config = ConfigDict(extra="forbid")

    cities: int = Field(5, ge=2, le=50, description="number of cities (natural clients)")
    days: int = Field(56, ge=7, le=730, description="days of hourly data per city")
    form: Literal["sequence", "tabular"] = Field(
        "sequence", description="past-hours windows or one row per hour"
    )
    target: Literal["congestion", "volume"] = Field(
        "congestion", description="next hour's congestion class, or its volume (regression)"
    )
    window: int = Field(24, ge=2, le=336, description="sequence: hours of history per sample")
    stride: int = Field(1, ge=1, le=24, description="hours between consecutive samples")
    seed: int = Field(0, ge=0, description="seed of the generated cities (independent of the run seed)")


def options(cfg: DataConfig) -> TrafficOptions:
    """Validated ``data.options``.

    :raises ConfigError: naming the bad option.
    """
    try:
        return TrafficOptions(**cfg.options)
    except ValidationError as exc:
        raise ConfigError(f"data.options (traffic): {'; '.join(validation_problems(exc))}") from None


def simulate_city(rng: np.random.Generator, hours: int) -> dict[str, np.ndarray]:
    """One city's hourly signals: its world is drawn from ``rng`` first, then its weather and traffic."""
    scale = float(np.exp(rng.normal(np.log(1.5), 0.6)))  # peak demand, thousand vehicles/hour
    capacity = scale * rng.uniform(0.75, 1.1)
    am, pm = rng.uniform(7.0, 9.0), rng.uniform(16.5, 18.5)
    am_h, pm_h, base = rng.uniform(0.5, 1.0), rng.uniform(0.5, 1.0), rng.uniform(0.35, 0.6)
    weekend_factor = rng.uniform(0.5, 1.0)
    rain_rate, temp_mean = rng.uniform(0.03, 0.2), rng.uniform(0.0, 24.0)
    incident_rate = rng.uniform(0.004, 0.03)

    t = np.arange(hours)
    hour, day = t % 24, t // 24
    weekday = day % 7
    weekend = weekday >= 5

    def bump(mu: float, width: float) -> np.ndarray:
        return np.exp(-0.5 * ((hour - mu) / width) ** 2)

    workday = 0.08 + base * bump(13.0, 4.0) + am_h * bump(am, 1.2) + pm_h * bump(pm, 1.5)
    leisure = 0.08 + (base + 0.3) * bump(14.0, 3.5)
    profile = np.where(weekend, weekend_factor * leisure, workday)
    season = 1.0 + 0.08 * np.sin(2 * np.pi * (day / 365.0 + rng.uniform()))

    p_off = 0.25
    p_on = rain_rate * p_off / (1 - rain_rate)
    flips = rng.random(hours)
    rain = np.zeros(hours)
    for i in range(1, hours):
        rain[i] = (flips[i] < p_on) if rain[i - 1] == 0 else (flips[i] >= p_off)
    temperature = (
        temp_mean
        + 5.0 * np.sin(2 * np.pi * (hour - 9) / 24)
        + 6.0 * np.sin(2 * np.pi * day / 365.0)
        - 2.0 * rain
        + rng.normal(0, 1.0, hours)
    )
    incident = np.zeros(hours)
    severity = np.zeros(hours)
    for start in np.flatnonzero(rng.random(hours) < incident_rate):
        length = int(rng.integers(1, 5))
        incident[start : start + length] = 1.0
        severity[start : start + length] = np.maximum(severity[start : start + length], rng.uniform(0.3, 0.6))

    noise = np.zeros(hours)
    shocks = rng.normal(0, 0.06, hours)
    for i in range(1, hours):
        noise[i] = 0.8 * noise[i - 1] + shocks[i]
    demand = scale * profile * season * (1 - 0.08 * rain) * np.exp(noise)
    capacity_now = capacity * (1 - severity) * (1 - 0.15 * rain)
    ratio = demand / capacity_now
    volume = np.minimum(demand, capacity_now) * np.exp(rng.normal(0, 0.02, hours))
    speed = 1.0 / (1.0 + 0.15 * ratio**4)
    congestion = np.digitize(ratio, [0.5, 0.8])
    return {
        "hour": hour,
        "weekday": weekday,
        "weekend": weekend.astype(float),
        "rain": rain,
        "temperature": temperature,
        "incident": incident,
        "volume": volume,
        "speed": speed,
        "congestion": congestion,
    }


def _sequence(sig: dict[str, np.ndarray], opt: TrafficOptions) -> tuple[np.ndarray, np.ndarray]:
    """Windows of the past ``window`` hours ``(M, window, 8)`` and the rows of their next hour."""
    angle = 2 * np.pi * sig["hour"] / 24
    feats = np.stack(
        [
            sig["volume"],
            sig["speed"],
            sig["rain"],
            sig["temperature"],
            sig["incident"],
            np.sin(angle),
            np.cos(angle),
            sig["weekend"],
        ],
        axis=1,
    )
    ends = np.arange(opt.window - 1, len(feats) - 1, opt.stride)
    view = np.lib.stride_tricks.sliding_window_view(feats, opt.window, axis=0)  # (N-W+1, 8, W)
    return np.ascontiguousarray(view[ends - opt.window + 1].transpose(0, 2, 1)), ends + 1


def _tabular(sig: dict[str, np.ndarray], opt: TrafficOptions) -> tuple[np.ndarray, np.ndarray]:
    """One row per hour (from hour 24 on) with lags, and the rows of the next hour."""
    now = np.arange(24, len(sig["volume"]) - 1, opt.stride)
    angle = 2 * np.pi * sig["hour"][now] / 24
    v = sig["volume"]
    mean24 = np.convolve(v, np.ones(24) / 24, mode="full")[: len(v)]  # mean of the past 24 hours
    feats = np.stack(
        [
            np.sin(angle),
            np.cos(angle),
            sig["weekday"][now],
            sig["weekend"][now],
            sig["rain"][now],
            sig["temperature"][now],
            sig["incident"][now],
            v[now],
            v[now - 1],
            v[now - 24],
            sig["speed"][now],
            mean24[now],
        ],
        axis=1,
    )
    return feats, now + 1


@DATASETS.register("traffic")
class Traffic(DatasetSource):
    Options = TrafficOptions
    description = (
        "Synthetic hourly traffic in several cities (own scale, peaks, weather, incidents): "
        "next-hour congestion class or volume, as sequences (past W hours) or tabular rows; "
        "column 'city'."
    )
    kind = "sequence"
    task = "classification"
    source = "generated (FedMosaic), options: cities, days, form, target, window, stride, seed"

    @classmethod
    def load(cls, cfg: DataConfig, root: Path) -> Dataset:
        opt = options(cfg)
        rng = np.random.default_rng(opt.seed)
        xs, ys, cities = [], [], []
        for c in range(opt.cities):
            name = CITY_NAMES[c] if c < len(CITY_NAMES) else f"City {c + 1}"
            sig = simulate_city(np.random.default_rng(rng.integers(2**63)), opt.days * 24)
            x, rows = (_sequence if opt.form == "sequence" else _tabular)(sig, opt)
            xs.append(x)
            ys.append(sig["congestion"][rows] if opt.target == "congestion" else sig["volume"][rows])
            cities.append(np.full(len(x), name))
        x, y = np.concatenate(xs), np.concatenate(ys)
        if opt.form == "sequence":
            spec, names = InputSpec("sequence", (opt.window, len(SEQUENCE_FEATURES))), SEQUENCE_FEATURES
        else:
            spec, names = InputSpec("tabular", (len(TABULAR_FEATURES),)), TABULAR_FEATURES
        if opt.target == "congestion":
            y_t, task, classes = torch.as_tensor(y, dtype=torch.long), "classification", list(CLASSES)
        else:
            y_t, task, classes = torch.as_tensor(y, dtype=torch.float32), "regression", []
        city = np.concatenate(cities)
        report = {
            "cities": {str(n): int((city == n).sum()) for n in dict.fromkeys(city)},
            "target": opt.target,
            "form": opt.form,
            "units": "volume in thousand vehicles/hour",
        }
        return Dataset(
            f"traffic_{opt.form}",
            as_tensor_x(x),
            y_t,
            spec,
            task=task,
            classes=classes,
            columns={"city": city},
            feature_names=list(names),
            report=report,
        )
