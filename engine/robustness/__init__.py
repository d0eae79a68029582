"""Robustness: simulated attacks by compromised clients and robust aggregation (defences).

- :mod:`engine.robustness.aggregate` — the maths (median, trimmed mean, Krum, clipping) as pure
  functions over plain tensors.
- :mod:`engine.robustness.defences` — the registered rules a config's ``defence`` names.
- :mod:`engine.robustness.combine` — the one seam where strategies combine contributions.
- :mod:`engine.robustness.attacks` — the registered attacks a client's ``adversary`` names.
- :mod:`engine.robustness.adversaries` — what a run does with them (poisoned data, tampered
  payloads, the backdoor's attack success rate).
- :mod:`engine.robustness.check` — what cannot apply, and why, before a run starts.
"""
