"""State-dict helpers, in one place: plain dicts of tensors (a client's state, a message, a
payload) counted, merged, filtered, copied off live modules and loaded into them.

The engine moves models between rounds as these dicts, never as modules; the helpers that touch a
module (:func:`snapshot`, :func:`load_into`) avoid ``state_dict``'s per-call cost, which runs for
every client every round.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

State = Mapping[str, Tensor]


def nbytes(tree: object) -> int:
    """Bytes of every tensor in a nested dict/list/tuple (what crossing the network would cost)."""
    if isinstance(tree, Tensor):
        return tree.numel() * tree.element_size()
    if isinstance(tree, Mapping):  # the common case, a flat state dict, without recursion
        return sum(
            v.numel() * v.element_size() if isinstance(v, Tensor) else nbytes(v) for v in tree.values()
        )
    if isinstance(tree, (list, tuple)):
        return sum(nbytes(v) for v in tree)
    return 0


def overlay(state: State, message: Mapping[str, object]) -> dict[str, Tensor]:
    """``state`` with every tensor of ``message`` whose name and shape match put in its place:
    what a client's model becomes when it receives a (possibly partial) model."""
    merged = dict(state)
    for key, value in message.items():
        if isinstance(value, Tensor) and key in merged and merged[key].shape == value.shape:
            merged[key] = value
    return merged


def subtract(a: State, b: State) -> dict[str, Tensor]:
    """``a - b`` for every key of ``a`` (floating tensors only)."""
    return {k: (v - b[k]) if v.is_floating_point() else v.clone() for k, v in a.items()}


def select_keys(state: State, prefixes: Sequence[str]) -> dict[str, Tensor]:
    """The entries whose names start with one of ``prefixes`` (``()`` selects everything)."""
    if not prefixes:
        return dict(state)
    return {k: v for k, v in state.items() if k.startswith(tuple(prefixes))}


def detach(tree: Any, memo: dict[tuple, Tensor] | None = None) -> Any:
    """A CPU copy of every tensor in a nested dict/list, sharing nothing with live modules.

    :param memo: copies already made, keyed by the source's memory (device, address, shape,
        strides, dtype): a tensor that appears in both a client's new state and its payload is
        copied once (both are read-only afterwards).
    """
    if isinstance(tree, Tensor):
        if memo is None:
            return tree.detach().to("cpu", copy=True)
        key = (tree.device, tree.data_ptr(), tuple(tree.shape), tuple(tree.stride()), tree.dtype)
        if key not in memo:
            memo[key] = tree.detach().to("cpu", copy=True)
        return memo[key]
    if isinstance(tree, dict):
        return {k: detach(v, memo) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return type(tree)(detach(v, memo) for v in tree)
    return tree


def _tensors(model: torch.nn.Module) -> dict[str, Tensor]:
    tensors = model.__dict__.get("_fm_tensors")
    if tensors is None:
        tensors = dict(model.state_dict(keep_vars=True))
        model.__dict__["_fm_tensors"] = tensors
    return tensors


def snapshot(model: torch.nn.Module) -> dict[str, Tensor]:
    """``model.state_dict()`` (detached views, same names and order), without its per-call cost."""
    return {name: t.detach() for name, t in _tensors(model).items()}


def load_into(model: torch.nn.Module, state: dict[str, Tensor]) -> None:
    """Copy ``state`` into ``model``'s parameters and buffers in place: the same effect as
    ``load_state_dict(state, strict=False)`` for matching names, without its per-call overhead
    (this runs for every client every round). Unknown names raise ``KeyError``."""
    tensors = _tensors(model)
    with torch.no_grad():
        for name, value in state.items():
            tensors[name].copy_(value)


def to_device(tree: Any, device: torch.device) -> Any:
    """``tree`` with every tensor on ``device`` (no copy when already there)."""
    if isinstance(tree, Tensor):
        return tree.to(device, non_blocking=True)
    if isinstance(tree, dict):
        return {k: to_device(v, device) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return type(tree)(to_device(v, device) for v in tree)
    return tree
