"""The round loop and what it calls: :mod:`.simulation` (the one loop), :mod:`.client` (a client's
turn), :mod:`.training` (the local training loop and optimisers), :mod:`.evaluation` (batched
scoring), :mod:`.aggregate` (weighted means), :mod:`.state` (state-dict helpers),
:mod:`.metrics` (every figure, defined once) and :mod:`.scores` (computing them), :mod:`.seeding` (every random draw) and
:mod:`.recorder` (where the loop's records go)."""
