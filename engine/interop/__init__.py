"""FedMosaic experiments in other frameworks: export as a runnable Flower app
(:mod:`engine.interop.flower`, run by :mod:`engine.interop.flower_runtime`)."""
