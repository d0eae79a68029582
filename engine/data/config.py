"""The ``data`` section of an experiment config (a public interface: users write these files)."""

from __future__ import annotations

import codecs
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

ColumnType = Literal["auto", "numeric", "categorical", "ordinal", "boolean", "datetime", "ignore"]
COLUMN_TYPES: tuple[str, ...] = ("auto", "numeric", "categorical", "ordinal", "boolean", "datetime", "ignore")


class PartitionConfig(BaseModel):
    """How the pool is split across clients: ``{"method": name, **params}``; the params are
    validated against the partitioner's own ``Params`` model."""

    model_config = ConfigDict(extra="allow")

    method: str = Field("iid", description="partitioner name (see `python -m engine catalog`)")

    def params(self) -> dict[str, Any]:
        """The method's parameters (everything but ``method``)."""
        return dict(self.model_extra or {})


class ColumnSpec(BaseModel):
    """Override of what a CSV column is. A bare string is the ``type``: ``"age": "numeric"``."""

    model_config = ConfigDict(extra="forbid")

    type: ColumnType = Field(
        "auto",
        description="numeric; categorical (one-hot); ordinal (integer codes, see `order`); boolean; "
        "datetime (expanded into year/month/day/weekday/hour features); ignore (not a feature)",
    )
    impute: Literal["auto", "mean", "median", "most_frequent", "zero"] = Field(
        "auto",
        description="how missing values are filled (auto: median for numbers, most frequent otherwise)",
    )
    order: list[str] | None = Field(
        None, description="category order for an ordinal column (first = 0); default: sorted"
    )
    missing_values: list[str | float] = Field(
        default_factory=list,
        description="values that mean 'missing' in this column (e.g. 0 or -99 used as a code); treated as "
        "empty",
    )

    @model_validator(mode="before")
    @classmethod
    def _from_type_name(cls, value: Any) -> Any:
        return {"type": value} if isinstance(value, str) else value


class WindowConfig(BaseModel):
    """Cut a time-ordered CSV into sliding windows so sequence models (RNN, 1-D CNN, transformer)
    read real time series: each sample is ``length`` consecutive rows of features, and its target
    is the target column ``horizon`` rows after the window's last row (0: the last row itself)."""

    model_config = ConfigDict(extra="forbid")

    time_column: str = Field(..., description="column the rows are sorted by (a date/time or a number)")
    length: int = Field(24, ge=2, le=10_000, description="rows per window (W)")
    stride: int = Field(1, ge=1, le=10_000, description="rows between the starts of consecutive windows")
    horizon: int = Field(
        0,
        ge=0,
        le=10_000,
        description="predict the target this many rows after the window (0: at its last row)",
    )
    group_column: str | None = Field(
        None,
        description="windows never cross a change of this column (default: the natural partition column)",
    )
    include_target: bool = Field(
        False,
        description="add past target values as a feature (needs horizon >= 1, otherwise it leaks the answer)",
    )

    @model_validator(mode="after")
    def _no_leak(self) -> WindowConfig:
        if self.include_target and self.horizon < 1:
            raise ValueError(
                "include_target needs horizon >= 1, otherwise the window contains its own target"
            )
        return self


class DataConfig(BaseModel):
    """Which dataset, how it is split into clients, and the held-out sets."""

    model_config = ConfigDict(extra="forbid")

    dataset: str = Field("digits", description="dataset name (see `python -m engine catalog`)")
    partition: PartitionConfig = Field(default_factory=PartitionConfig)
    test_fraction: float = Field(
        0.2, ge=0.0, lt=1.0, description="share of each client's data kept as its local test split"
    )
    validation_fraction: float = Field(
        0.15,
        ge=0.0,
        lt=1.0,
        description="share of each client's training data kept aside to pick its best round (early "
        "stopping); never trained on, never used for the reported test figures",
    )
    global_test_fraction: float = Field(
        0.2, gt=0.0, lt=1.0, description="share of the whole dataset held out as the global test set"
    )
    public_fraction: float = Field(
        0.0,
        ge=0.0,
        lt=1.0,
        description="share held out as an unlabelled public/proxy set (FedMD, FedDF need it)",
    )
    max_samples: int | None = Field(
        None, ge=10, description="use at most this many samples (stratified subsample), for quick runs"
    )
    path: str | None = Field(
        None,
        description="file to read (csv) or folder holding downloaded files (mnist, fashion_mnist, cifar10); "
        "relative paths are tried against the working directory, then the data directory",
    )
    target: str | None = Field(None, description="csv: the column to predict")
    task: Literal["auto", "classification", "regression"] = Field(
        "auto", description="csv: classification or regression (auto: inferred from the target column)"
    )
    columns: dict[str, ColumnSpec] = Field(
        default_factory=dict, description='csv: per-column type overrides, e.g. {"zip": "categorical"}'
    )
    image_shape: list[int] | None = Field(
        None, description="csv: read the feature columns as pixels of this shape, [C, H, W] or [H, W]"
    )
    window: WindowConfig | None = Field(None, description="csv: sliding windows over a time column")
    split_column: str | None = Field(
        None,
        description="csv: a column saying per row whether it is train, test or validation data; test rows "
        "become the clients' test splits (and together the global test set), honoured exactly",
    )
    statistics: Literal["federated", "client", "centralized"] = Field(
        "federated",
        description="where preprocessing statistics (imputation values, scaling, category lists) come from: "
        "federated (aggregates of the clients' training splits: sums and counts, never rows), "
        "client (each client's own training split alone), or centralized (the whole file: not "
        "possible in a real federation)",
    )
    delimiter: str | None = Field(None, description="csv: field separator (default: detected)")
    encoding: str = Field("auto", description="csv: text encoding of the file (auto: detected)")
    decimal: Literal["auto", ".", ","] = Field(
        "auto", description="csv: decimal mark of numbers (auto: a comma when the file writes 12,5)"
    )
    sheet: str | None = Field(None, description="xlsx: the sheet to read (default: the first)")
    max_file_mb: float = Field(200.0, gt=0, le=100_000, description="refuse files larger than this (MB)")
    download: bool = Field(True, description="download missing files (mnist, cifar10) when a network exists")
    options: dict[str, Any] = Field(
        default_factory=dict, description="dataset-specific options (see the dataset's catalog entry)"
    )

    @field_validator("partition", mode="before")
    @classmethod
    def _partition_from_name(cls, value: Any) -> Any:
        return {"method": value} if isinstance(value, str) else value

    @field_validator("image_shape")
    @classmethod
    def _image_shape(cls, value: list[int] | None) -> list[int] | None:
        if value is None:
            return None
        if len(value) == 2:
            value = [1, *value]
        if len(value) != 3 or any(v < 1 for v in value):
            raise ValueError("image_shape must be [C, H, W] or [H, W] with positive sizes, e.g. [1, 28, 28]")
        return value

    @field_validator("delimiter")
    @classmethod
    def _delimiter(cls, value: str | None) -> str | None:
        if value is not None and value != "\\t" and len(value) != 1:
            raise ValueError("delimiter must be one character such as ',', ';', '|' or '\\t'")
        return "\t" if value == "\\t" else value

    @field_validator("encoding")
    @classmethod
    def _encoding(cls, value: str) -> str:
        if value.strip().lower() == "auto":
            return "auto"
        try:
            codecs.lookup(value)
        except LookupError:
            raise ValueError(f"unknown encoding '{value}'; try utf-8, latin-1 or cp1252") from None
        return value

    @model_validator(mode="after")
    def _one_shape(self) -> DataConfig:
        if self.image_shape is not None and self.window is not None:
            raise ValueError(
                "image_shape and window cannot both be set: a CSV is read as images or as "
                "time-series windows, not both"
            )
        return self

    def label(self) -> str:
        """What the pages and run lists call this dataset: a user file by its name."""
        from engine.labels import dataset_label

        return dataset_label(self.model_dump(include={"dataset", "path"}))

    def natural_column(self) -> str | None:
        """The column a ``natural`` partition splits on, if that is the configured method."""
        if self.partition.method != "natural":
            return None
        column = self.partition.params().get("column")
        return str(column) if column is not None else None
