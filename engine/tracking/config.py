"""The ``tracking`` section of an experiment config: where else a run's records go."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, field_validator

_URI = re.compile(r"^(file:|https?://|sqlite:///|databricks)|^/")


class MlflowSpec(BaseModel):
    """An MLflow tracking server or store to log the run to (needs the ``mlflow`` extra)."""

    model_config = ConfigDict(extra="forbid")

    uri: str = Field(
        ...,
        min_length=1,
        max_length=2000,
        description="MLflow tracking URI: http(s)://host:port, file:///path/mlruns, sqlite:///path.db",
    )
    experiment: str = Field("FedMosaic", min_length=1, max_length=200, description="MLflow experiment name")
    models: bool = Field(True, description="log the kept models as artifacts")
    report: bool = Field(True, description="log the HTML report as an artifact")

    @field_validator("uri")
    @classmethod
    def _known_scheme(cls, value: str) -> str:
        value = value.strip()
        if not _URI.match(value):
            raise ValueError(
                "give an MLflow tracking URI such as http://localhost:5000, file:///home/me/mlruns "
                "or sqlite:///home/me/mlflow.db"
            )
        return value


class TrackingSpec(BaseModel):
    """Sinks a run's parameters, per-round figures and kept models go to, besides the database."""

    model_config = ConfigDict(extra="forbid")

    mlflow: MlflowSpec | None = Field(
        None, description='log to MLflow, e.g. {"uri": "file:///home/me/mlruns"}'
    )
