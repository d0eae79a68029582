"""Checkpoints of a run (the :class:`engine.core.simulation.Simulation` methods that write and
restore them): tensors and plain values only, loadable with ``weights_only=True``, written to a
temporary file and renamed; resuming picks the newest checkpoint that loads and fits the run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from engine.errors import StorageError


class Checkpoints:
    """Saving and restoring a run's state between rounds."""

    def checkpoint(self, rnd: int) -> Path:
        """Save everything needed to continue after round ``rnd`` (tensors and plain values only,
        loadable with ``weights_only=True``)."""
        path = self.recorder.checkpoint_path(rnd)
        folder = path.parent
        last = self.history[-1].metrics if self.history else {}
        blob = {
            "round": rnd,
            "states": {str(k): v for k, v in self.states.items()},
            "strategy": self.strategy.state_dict(),
            "clock": self.clock.state_dict(),
            "participated": sorted(self.participated),
            "privacy": self.privacy.state_dict(),
            "private_aggregation": self.private_agg.state_dict(),
            "cum": {k: float(last.get(f"cum_{k}", 0.0)) for k in ("bytes_up", "bytes_down", "wall_s")},
            "best": {str(k): v for k, v in self.best.items()},
            "server_best": dict(self.server_best),
            "references_written": sorted(self._references_written),
        }
        tmp = path.with_suffix(".tmp")
        try:
            folder.mkdir(parents=True, exist_ok=True)
            torch.save(blob, tmp)
            tmp.replace(path)
        except (OSError, RuntimeError) as exc:  # torch.save reports a full disk as RuntimeError
            try:
                tmp.unlink(missing_ok=True)
            except OSError:
                pass
            raise StorageError(
                f"cannot write checkpoint {path}: {getattr(exc, 'strerror', None) or exc}; "
                f"free some disk space (or set FEDMOSAIC_HOME to another disk) and resume "
                f"the run: its completed rounds are kept"
            ) from None
        self.recorder.checkpointed(rnd, path)
        return path

    def _checkpoint_before_stop(self, rnd: int) -> None:
        """Cancelled between rounds: checkpoint the last completed round, so resuming loses
        nothing (a cancel inside a round resumes from the newest periodic checkpoint)."""
        if (
            not self.recorder.keeps_checkpoints
            or not self.config.checkpoint_every
            or not self.history
            or self.history[-1].round != rnd
        ):
            return
        if not any(row["round"] == rnd for row in self.recorder.checkpoints()):
            self.checkpoint(rnd)

    def restore(self) -> int:
        """Load the newest checkpoint of this run that loads and fits this run's models; return its
        round (0 when there is none). A checkpoint that cannot be decoded, lacks a part, or holds
        other clients, parameter names or shapes is skipped with a warning for an older one."""
        for row in self.recorder.checkpoints():
            path = Path(row["path"])
            if not path.exists():
                continue
            try:
                blob = torch.load(path, map_location="cpu", weights_only=True)
            except Exception as exc:  # noqa: BLE001 - a damaged file: fall back to an older one
                self._log(
                    f"checkpoint of round {row['round']} is unreadable ({type(exc).__name__}); "
                    f"trying an older one",
                    "warning",
                )
                continue
            why = self._misfit(blob)
            if why is None:
                before = (
                    self.states,
                    self.strategy.state_dict(),
                    self.clock.state_dict(),
                    set(self.participated),
                    dict(self._resumed_cum),
                    self.best,
                    self.server_best,
                    set(self._references_written),
                )
                privacy_before = self.privacy.state_dict()
                try:
                    self.states = {int(k): v for k, v in blob["states"].items()}
                    self.strategy.load_state_dict(blob["strategy"])
                    self.clock.load_state_dict(blob["clock"])
                    self.participated = {int(c) for c in blob["participated"]}
                    self.privacy.load_state_dict(dict(blob.get("privacy", {})))
                    self.private_agg.load_state_dict(dict(blob.get("private_aggregation", {})))
                    self._resumed_cum = {str(k): float(v) for k, v in dict(blob.get("cum", {})).items()}
                    self.best = {int(k): v for k, v in dict(blob.get("best", {})).items()}
                    self.server_best = dict(blob.get("server_best", {}))
                    self._references_written = {int(c) for c in blob.get("references_written", [])}
                    rnd = int(blob["round"])
                except Exception as exc:  # noqa: BLE001 - put back what was there, try an older one
                    (
                        self.states,
                        strategy,
                        clock,
                        self.participated,
                        self._resumed_cum,
                        self.best,
                        self.server_best,
                        self._references_written,
                    ) = before
                    self.strategy.load_state_dict(strategy)
                    self.clock.load_state_dict(clock)
                    self.privacy.load_state_dict(privacy_before)
                    why = f"{type(exc).__name__}: {str(exc)[:120]}"
            if why is not None:
                self._log(
                    f"checkpoint of round {row['round']} does not fit this run ({why}); trying an older one",
                    "warning",
                )
                continue
            self.recorder.truncate_after(rnd)
            self._log(f"resumed from the checkpoint of round {rnd}")
            return rnd
        self.recorder.truncate_after(0)
        self._log("no usable checkpoint: restarting from round 1")
        return 0

    def _misfit(self, blob: Any) -> str | None:
        """Why a loaded checkpoint cannot continue this run (``None`` when it fits): a missing
        part, other clients, or model tensors whose names or shapes differ from this run's."""
        if not isinstance(blob, dict):
            return "not a checkpoint"
        missing = [k for k in ("round", "states", "strategy", "clock", "participated") if k not in blob]
        if missing:
            return f"no {', '.join(missing)}"
        states = blob["states"]
        if not isinstance(states, dict) or {str(k) for k in states} != {str(k) for k in self.states}:
            return "other clients"
        for key, state in states.items():
            ours = self.states[int(key)]["model"]
            model = state.get("model") if isinstance(state, dict) else None
            if not isinstance(model, dict) or set(model) != set(ours):
                return f"client {key}: other parameter names"
            for name, tensor in model.items():
                if not isinstance(tensor, torch.Tensor) or tensor.shape != ours[name].shape:
                    return f"client {key}: {name} has another shape"
        return None
