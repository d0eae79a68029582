"""``python -m engine``: the FedMosaic command line."""

from engine.cli import main

raise SystemExit(main())
