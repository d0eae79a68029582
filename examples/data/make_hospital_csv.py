"""Write ``hospital.csv``: a small synthetic multi-site readmission dataset for FedMosaic's
examples and tests (no real patients). Deterministic: running it again gives the same bytes.

600 admissions at 5 hospitals of different sizes. Columns: an identifier (``patient_id``), the
site (``hospital``, the natural partition), a date/time (``admitted``), numbers (``age``, ``bmi``,
``systolic_bp``, ``cholesterol``, ``length_of_stay``), categories (``sex``, ``ward``), booleans
(``smoker`` as yes/no, ``diabetic`` as True/False) and the binary target ``readmitted`` (yes/no).
Some values are missing (empty cells). Sites differ in patients (age, BMI), in base readmission
rate, and in measurement: "St Olaf" records cholesterol in mmol/L, the others in mg/dL.

    python examples/data/make_hospital_csv.py
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

SITES = {  # name: (patients, mean age, mean bmi, readmission log-odds offset)
    "Northgate": (170, 58, 27.0, -0.2),
    "Riverside": (140, 66, 28.5, 0.3),
    "St Olaf": (120, 52, 26.0, -0.5),
    "Hillcrest": (100, 71, 29.5, 0.6),
    "Lakeview": (70, 61, 31.0, 0.0),
}
WARDS = ["cardiology", "general", "surgery", "icu"]


def make(seed: int = 7) -> list[dict[str, str]]:
    """The rows, as strings (empty string = missing)."""
    rng = np.random.default_rng(seed)
    rows = []
    start = np.datetime64("2023-01-01T00:00")
    for site, (n, mean_age, mean_bmi, offset) in SITES.items():
        for _ in range(n):
            age = int(np.clip(rng.normal(mean_age, 12), 18, 97))
            bmi = float(np.clip(rng.normal(mean_bmi, 4.5), 15, 55))
            smoker = bool(rng.random() < 0.25)
            diabetic = bool(rng.random() < 0.12 + 0.004 * (age - 50) + 0.01 * (bmi - 27))
            ward = WARDS[int(rng.choice(4, p=[0.3, 0.4, 0.2, 0.1]))]
            bp = int(rng.normal(118 + 0.45 * age, 14))
            chol_mg = float(rng.normal(180 + 0.5 * age + 2.0 * (bmi - 27), 30))
            stay = int(1 + rng.poisson(2 + 4 * (ward == "icu") + 1.5 * (ward == "surgery")))
            logit = (
                offset
                - 2.4
                + 0.035 * (age - 60)
                + 0.06 * (bmi - 28)
                + 0.6 * smoker
                + 0.8 * diabetic
                + 0.25 * (stay - 3)
                + 0.7 * (ward == "icu")
                + 0.01 * (bp - 140)
            )
            readmitted = bool(rng.random() < 1 / (1 + np.exp(-logit)))
            minutes = int(rng.integers(0, 365 * 24 * 60))
            admitted = str(start + np.timedelta64(minutes, "m")).replace("T", " ")
            chol = f"{chol_mg / 38.67:.2f}" if site == "St Olaf" else f"{chol_mg:.0f}"
            row = {
                "patient_id": "",
                "hospital": site,
                "admitted": admitted,
                "age": str(age),
                "sex": "F" if rng.random() < 0.52 else "M",
                "bmi": f"{bmi:.1f}",
                "smoker": "yes" if smoker else "no",
                "diabetic": str(diabetic),
                "ward": ward,
                "systolic_bp": str(bp),
                "cholesterol": chol,
                "length_of_stay": str(stay),
                "readmitted": "yes" if readmitted else "no",
            }
            for column, rate in (
                ("age", 0.03),
                ("bmi", 0.06),
                ("smoker", 0.05),
                ("cholesterol", 0.08),
                ("ward", 0.02),
            ):
                if rng.random() < rate:
                    row[column] = ""
            rows.append(row)
    order = rng.permutation(len(rows))
    rows = [rows[i] for i in order]
    for i, row in enumerate(rows):
        row["patient_id"] = f"P{i + 1:04d}"
    return rows


def write(out: Path) -> None:
    """Write the rows to ``out``."""
    rows = make()
    with out.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def main() -> None:
    out = Path(__file__).with_name("hospital.csv")
    write(out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
