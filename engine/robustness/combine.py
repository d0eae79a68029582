"""The one seam where a strategy's server combines what its clients sent: :class:`Combiner`.

Strategies never average by hand: they call ``self.server.combine.mean(...)`` for model weights
or updates (and any other same-shaped contributions, such as FedMD's public-set logits) and
``self.server.combine.class_means(...)`` for per-class tables (FD's logits, FedProto's
prototypes). Without a defence these are exactly :func:`engine.core.aggregate.weighted_mean` and the
count-weighted class merge, bit for bit. With one (``defence`` in the config) every combination
goes through it:

- ``mean``: each client's floating tensors are flattened into one row, so Krum's distances and
  norm clipping's lengths are those of the whole model (update); integer tensors (counters) take
  the heaviest client's value as before.
- ``class_means``: class by class, over the clients that hold samples of that class; the merged
  counts stay the plain sums (they say how many samples are behind a row, not who is trusted).

What the defence did to each client (Krum: whether it was kept; clipping: by how much it was
scaled) is collected per client and handed to the round loop by :meth:`Combiner.take_notes`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from engine.core.aggregate import weighted_mean
from engine.robustness.defences import DEFENCES, Combined, Defence

State = Mapping[str, Tensor]


def flatten(states: Sequence[State], keys: Sequence[str]) -> Tensor:
    """``(K, P)``: each state's tensors of ``keys`` flattened and concatenated, in float32 (the
    defences compute in float64 where it matters)."""
    return torch.stack([torch.cat([s[k].reshape(-1).to(torch.float32) for k in keys]) for s in states])


def unflatten(row: Tensor, like: State, keys: Sequence[str]) -> dict[str, Tensor]:
    """The inverse of :func:`flatten` for one row, in ``like``'s shapes and dtypes."""
    out: dict[str, Tensor] = {}
    start = 0
    for k in keys:
        ref = like[k]
        n = ref.numel()
        out[k] = row[start : start + n].reshape(ref.shape).to(ref.dtype)
        start += n
    return out


class Combiner:
    """How the server combines contributions this run: plainly, or through a :class:`Defence`.

    :param defence: ``None`` or the ``none`` defence: plain weighted means.
    :param log: where warnings go (the run's events).
    """

    def __init__(self, defence: Defence | None = None, log: Callable[[str], None] | None = None) -> None:
        self.defence = None if defence is None or not defence.individual else defence
        self.log = log or (lambda message: None)
        self._notes: dict[int, dict[str, list[float]]] = {}
        self._warned: set[str] = set()

    @property
    def plain(self) -> bool:
        return self.defence is None

    # ---- what strategies call ----------------------------------------------------------------
    def mean(
        self,
        states: Sequence[State],
        weights: Sequence[float],
        reference: State | None = None,
        who: Sequence[int] | None = None,
    ) -> dict[str, Tensor]:
        """One state from ``states`` (same keys and shapes), weighted by ``weights``.

        :param reference: the current global state the contributions started from (norm clipping
            measures updates from it); ``None`` where there is none.
        :param who: the contributing clients' ids, for the per-client notes.
        """
        if not states:
            return {}
        if self.defence is None:
            return weighted_mean(states, weights)
        first = states[0]
        keys = [k for k, v in first.items() if v.is_floating_point()]
        w = torch.as_tensor([float(x) for x in weights], dtype=torch.float64)
        out: dict[str, Tensor] = {}
        heaviest = int(torch.argmax(w)) if len(w) else 0
        for k, v in first.items():
            if not v.is_floating_point():
                out[k] = states[heaviest][k].clone()
        if keys:
            ref = None
            if reference is not None and all(
                k in reference and reference[k].shape == first[k].shape for k in keys
            ):
                ref = flatten([reference], keys)[0]
            result = self._combine(flatten(states, keys), w, ref, who)
            out.update(unflatten(result.row, first, keys))
        return {k: out[k] for k in first}

    def class_means(
        self,
        means: Sequence[Tensor],
        counts: Sequence[Tensor],
        reference: tuple[Tensor, Tensor] | None = None,
        who: Sequence[int] | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Per-class combination of the clients' per-class rows ``means[k]`` ``(C, D)`` with the
        samples behind them ``counts[k]`` ``(C,)``: class ``c`` over the clients with
        ``counts[k][c] > 0``. Classes nobody holds stay zero with count 0.

        :param reference: the current global table and its counts (rows with count 0 are unknown).
        """
        if self.defence is None:
            from engine.strategies._distill import merge_class_means

            return merge_class_means(list(means), list(counts))
        table = torch.stack([m.to(torch.float32) for m in means])  # (K, C, D)
        n = torch.stack([c.to(torch.float64) for c in counts])  # (K, C)
        total = n.sum(0)
        out = torch.zeros_like(table[0])
        for c in range(table.shape[1]):
            rows = torch.nonzero(n[:, c] > 0).flatten()
            if len(rows) == 0:
                continue
            ref = None
            if reference is not None and float(reference[1][c]) > 0:
                ref = reference[0][c].to(torch.float32)
            ids = [who[int(i)] for i in rows] if who is not None else None
            out[c] = self._combine(table[rows, c], n[rows, c], ref, ids).row
        return out.to(means[0].dtype), total.to(counts[0].dtype)

    def masked_mean(
        self,
        states: Sequence[State],
        masks: Sequence[Mapping[str, Tensor]],
        weights: Sequence[float],
        reference: State,
        who: Sequence[int] | None = None,
    ) -> dict[str, Tensor]:
        """One state in ``reference``'s shapes from contributions that each cover only part of it
        (HeteroFL's width slices, written into the full shape): ``masks[k][key]`` says which numbers
        client ``k`` sent. Entries are grouped by the set of clients covering them and each group
        is combined on its own (a defence then compares like with like: Krum's distances, the
        median's values); entries nobody covers keep ``reference``. Without a defence: the weighted
        mean over the covering clients."""
        keys = [k for k, v in reference.items() if v.is_floating_point()]
        out = {k: v for k, v in reference.items()}
        if not states or not keys:
            return out
        x = flatten(states, keys)  # (K, P)
        covered = torch.stack([torch.cat([m[k].reshape(-1) for k in keys]) for m in masks]).bool()
        ref = flatten([reference], keys)[0]
        w = torch.as_tensor([float(v) for v in weights], dtype=torch.float64)
        row = ref.clone()
        patterns, group = torch.unique(covered.T, dim=0, return_inverse=True)
        for p, pattern in enumerate(patterns):
            clients = torch.nonzero(pattern).flatten()
            if len(clients) == 0:
                continue
            entries = torch.nonzero(group == p).flatten()
            part = x[clients][:, entries]
            ids = [who[int(i)] for i in clients] if who is not None else None
            if self.defence is None:
                from engine.robustness.aggregate import weighted_rows_mean

                row[entries] = weighted_rows_mean(part, w[clients])
            else:
                row[entries] = self._combine(part, w[clients], ref[entries], ids).row
        out.update(unflatten(row, reference, keys))
        return out

    # ---- bookkeeping ----------------------------------------------------------------------------
    def take_notes(self) -> dict[int, dict[str, float]]:
        """Per-client figures of what the defence did since the last call (``defence_kept``: the
        share of combinations the client took part in; ``defence_scale``: the mean factor its
        updates were scaled by), then forget them."""
        notes = {cid: {k: sum(v) / len(v) for k, v in m.items() if v} for cid, m in self._notes.items()}
        self._notes = {}
        return notes

    def _combine(
        self, x: Tensor, weights: Tensor, reference: Tensor | None, who: Sequence[int] | None
    ) -> Combined:
        assert self.defence is not None
        need = type(self.defence).min_contributions(self.defence.params)
        if x.shape[0] < need and self.defence.name not in self._warned:
            self._warned.add(self.defence.name)
            self.log(
                f"{self.defence.title} combined {x.shape[0]} contribution(s) where it needs {need} to "
                f"be sure of its guarantee (more clients per round, or fewer tolerated attackers)"
            )
        result = self.defence.combine(x, weights, reference)
        if who is not None:
            for i, cid in enumerate(who):
                m = self._notes.setdefault(int(cid), {})
                if result.kept is not None:
                    m.setdefault("defence_kept", []).append(float(result.kept[i]))
                if result.scale is not None:
                    m.setdefault("defence_scale", []).append(float(result.scale[i]))
        return result


PLAIN = Combiner()
"""The combiner of a run without a defence (shared: it keeps no notes)."""


def make_combiner(spec: Any, log: Callable[[str], None] | None = None) -> Combiner:
    """The combiner for a config's ``defence`` (a :class:`engine.robustness.config.DefenceSpec`,
    a dict ``{"name": ..., **params}``, a name, or ``None``)."""
    if spec is None:
        return Combiner(log=log)
    if isinstance(spec, str):
        spec = {"name": spec}
    if not isinstance(spec, Mapping):
        spec = spec.model_dump()
    spec = dict(spec)
    cls = DEFENCES.get(str(spec.pop("name", "none")))
    return Combiner(cls(cls.Params(**spec)), log=log)
