"""A messy multi-site clinical table, generated: what real multi-hospital exports look like, with the
defects that break naive federated preprocessing. Synthetic (no real patients); deterministic for
a seed. Used by the tests, ``bench/clinical.py`` and the example file ``examples/data/clinical_sites.csv``.

Five hospitals of different sizes; a binary target ``outcome`` (``yes``/``no``: an adverse event
within 30 days). The defects:

- one site (``Eastbrook``, a referral centre) is ~94% positive; the federation ~52%;
- site-specific missingness: ``creatinine`` 66% missing at ``Northfield``, ``bmi`` 60% missing at
  ``Mercy``, ``hba1c`` 53% missing at ``Eastbrook`` (5% elsewhere);
- a site-specific missing-value code: ``Westgate`` writes 0 for a cholesterol it did not measure -
  in every row, so the column is constant there;
- ``triglycerides`` is 0 in a third of ``Mercy``'s rows (its code for "not measured");
- ``admission_type`` is a category coded 1-4 (emergency, elective, transfer, other) whose risk is
  not monotone in the code;
- ``spo2`` is constant (98) at ``Northfield``, whose monitors export a default;
- a few empty cells everywhere, an identifier column, yes/no and M/F text.

    from engine.data.datasets.clinical import write_messy_clinical_csv
    write_messy_clinical_csv("examples/data/clinical_sites.csv")
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

#: site: (patients, log-odds offset of the outcome, mean age)
SITES = {
    "Northfield": (800, -0.4, 63),
    "Westgate": (650, -0.2, 58),
    "Mercy": (550, 0.2, 66),
    "Eastbrook": (380, 4.6, 70),
    "Riverbend": (320, -0.6, 55),
}
#: risk of each admission type code (1 emergency, 2 elective, 3 transfer, 4 other): not monotone
ADMISSION_RISK = {1: 0.9, 2: -0.9, 3: 0.7, 4: -0.2}


def messy_clinical_frame(seed: int = 0) -> pd.DataFrame:
    """The table (missing values as NaN)."""
    rng = np.random.default_rng(seed)
    frames = []
    for site, (n, offset, mean_age) in SITES.items():
        age = np.clip(rng.normal(mean_age, 12, n), 18, 99).round()
        sex = rng.choice(["F", "M"], n)
        bmi = np.clip(rng.normal(27.5, 4.5, n), 15, 55).round(1)
        sbp = rng.normal(115 + 0.4 * age, 15).round()
        chol = rng.normal(200 + 0.3 * (age - 60), 35).round()
        trig = np.clip(rng.normal(150, 45, n), 40, None).round()
        creat = np.clip(rng.lognormal(0.0, 0.3, n), 0.3, 8).round(2)
        hba1c = np.clip(rng.normal(5.9 + 0.02 * (bmi - 27), 0.8), 4, 14).round(1)
        spo2 = np.clip(rng.normal(96, 2, n), 80, 100).round()
        admission = rng.choice([1, 2, 3, 4], n, p=[0.45, 0.3, 0.15, 0.1])
        smoker = rng.random(n) < 0.25
        risk = (
            0.06 * (age - 62)
            + 0.11 * (bmi - 27.5)
            + 0.025 * (sbp - 140)
            + 0.02 * (chol - 200)
            + 2.0 * (creat - 1.0)
            + 0.6 * (hba1c - 6.0)
            - 0.15 * (spo2 - 96)
            + 1.3 * np.vectorize(ADMISSION_RISK.get)(admission)
            + 0.9 * smoker
            + 0.4 * (sex == "M")
        )
        logit = offset - 1.4 + 1.7 * risk
        outcome = rng.random(n) < 1 / (1 + np.exp(-logit))
        frame = pd.DataFrame(
            {
                "hospital": site,
                "age": age,
                "sex": sex,
                "bmi": bmi,
                "systolic_bp": sbp,
                "cholesterol": chol,
                "triglycerides": trig,
                "creatinine": creat,
                "hba1c": hba1c,
                "spo2": spo2,
                "admission_type": admission,
                "smoker": np.where(smoker, "yes", "no"),
                "outcome": np.where(outcome, "yes", "no"),
            }
        )
        for col in ("age", "bmi", "systolic_bp", "cholesterol", "creatinine", "hba1c", "smoker"):
            frame.loc[rng.random(n) < 0.05, col] = np.nan  # a few empty cells everywhere
        if site == "Northfield":
            frame.loc[rng.random(n) < 0.66, "creatinine"] = np.nan
            frame["spo2"] = 98.0
        if site == "Mercy":
            frame.loc[rng.random(n) < 0.60, "bmi"] = np.nan
            frame.loc[rng.random(n) < 0.33, "triglycerides"] = 0.0
        if site == "Eastbrook":
            frame.loc[rng.random(n) < 0.53, "hba1c"] = np.nan
        if site == "Westgate":
            frame["cholesterol"] = 0.0  # not measured: written as 0, in every row
        frames.append(frame)
    table = pd.concat(frames, ignore_index=True)
    table = table.iloc[rng.permutation(len(table))].reset_index(drop=True)
    table.insert(0, "record_id", [f"R{i:05d}" for i in range(len(table))])
    return table


def write_messy_clinical_csv(path: str | Path, seed: int = 0) -> Path:
    """Write the table as CSV (empty cells for missing values); returns the path."""
    path = Path(path)
    messy_clinical_frame(seed).to_csv(path, index=False)
    return path


if __name__ == "__main__":
    out = write_messy_clinical_csv(sys.argv[1] if len(sys.argv) > 1 else "clinical_sites.csv")
    print(f"wrote {out}")
