"""Privacy for federated runs: what each client and the federation reveal, with a budget.

- :mod:`engine.privacy.config` — the config sections (a client's ``privacy``, the run's
  ``server_dp`` and ``secure_aggregation``); light, imported by :mod:`engine.config`.
- :mod:`engine.privacy.dpsgd` — DP-SGD on a client: Poisson-sampled batches, per-record gradients
  (``torch.func``), clipping and Gaussian noise; the layers it cannot privatise.
- :mod:`engine.privacy.accountant` — epsilon from Opacus's RDP or PRV accountant, and the noise
  that spends a target epsilon.
- :mod:`engine.privacy.ledger` — per client and round: settings, steps, epsilon spent, budgets.
- :mod:`engine.privacy.checks` — what can be privatised, checked before launch.

See ``docs/privacy.md``.
"""
