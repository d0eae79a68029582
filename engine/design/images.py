"""Images in the data section: the Data page's offer to read a table's pixel columns as images
(the guess is :mod:`engine.data.tables.pixels`, made while inspecting the file), the change that
accepts it, a few example images of the configured dataset, and a hint when the roster's models
would flatten the images."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import numpy as np

from engine.data import load_dataset
from engine.data.preview import image_examples
from engine.design.choices import architectures
from engine.design.roster import expanded_rows
from engine.design.schema import data_config, set_column_role
from engine.tracking.storage import default_data_dir


@dataclass(frozen=True)
class ImageOffer:
    """What the Data page offers: ``text`` (why the columns look like images, and which other
    columns reading them as images leaves out), the ``shape`` ``[C, H, W]`` and those ``others``."""

    text: str
    shape: list[int]
    others: list[str]


def offer(report: dict[str, Any] | None, data: dict[str, Any]) -> ImageOffer | None:
    """The offer to read the file as images, from an inspection ``report``; ``None`` when the file
    is already read as images or as time windows, or its columns do not look like pixels."""
    guess = (report or {}).get("image_guess")
    if not guess or data.get("image_shape") or data.get("window"):
        return None
    text = guess["reason"] + "."
    others = list(guess.get("others") or [])
    if others:
        named = ", ".join(f"'{c}'" for c in others)
        text += (
            f" {named} {'is not a pixel column' if len(others) == 1 else 'are not pixel columns'}: "
            f"reading the images leaves {'it' if len(others) == 1 else 'them'} out of the models' "
            f"input; {'it' if len(others) == 1 else 'they'} can still split the clients or mark "
            f"the test rows."
        )
    return ImageOffer(text, list(guess["shape"]), others)


def read_as_images(data: dict[str, Any], accepted: ImageOffer) -> dict[str, Any]:
    """The ``data`` section reading the pixel columns as images of the offered shape
    (``image_shape``), the other feature columns set to ``ignore``."""
    data = copy.deepcopy(data)
    for column in accepted.others:
        data = set_column_role(data, column, "ignore")
    data["image_shape"] = list(accepted.shape)
    return data


def examples(data: dict[str, Any], limit: int = 10, size: int = 56) -> list[tuple[str, np.ndarray]]:
    """Up to ``limit`` images of the configured dataset (one per class first) as ``(caption,
    uint8 array)`` pairs ready to show, each upscaled to about ``size`` pixels; empty when the
    dataset is not images.

    :raises FedMosaicError: the dataset cannot be loaded (names the fix).
    """
    ds = load_dataset(data_config(data), default_data_dir())
    return image_examples(ds, limit, size) if ds.input_spec.kind == "image" else []


def image_models() -> list[str]:
    """The architectures that read images as images (convolutions), by name."""
    return [name for name, kinds in architectures().items() if kinds == ["image"]]


def _arch(model: Any) -> str:
    return model if isinstance(model, str) else str((model or {}).get("arch", "mlp"))


def model_hint(design: dict[str, Any]) -> str | None:
    """A hint when the data are images but no client's model reads them as images (every model
    flattens the pixels into a row); ``None`` otherwise."""
    rows = expanded_rows(design)
    readers = set(image_models())
    used = {_arch(r.get("model")) for r in rows}
    if not rows or used & readers:
        return None
    return (
        f"Every client's model ({', '.join(sorted(used))}) reads each image as one flat row of pixels. "
        f"Image models read them as images ({', '.join(sorted(readers))}): choose them per client on "
        f"the Clients page (its architecture column)."
    )
