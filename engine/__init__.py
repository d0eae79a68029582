"""FedMosaic's engine: everything but the pages (which call it through :mod:`engine.design`)."""

import os

# Threads waiting for their OpenMP team sleep instead of spinning: on a machine busy with other
# processes spinning teams ran 5-12x slower than one thread (engine/threads.py). Read once, when
# torch loads its OpenMP runtime, so it is set here, before any engine module imports torch.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
