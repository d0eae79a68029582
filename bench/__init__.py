"""Benchmarks, each runnable as ``python -m bench.<name>``: they measure, print and (some) write a
markdown report under ``docs/``. Not imported by the engine or the app."""
