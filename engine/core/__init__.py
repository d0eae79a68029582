"""The round loop and what it calls.

- :mod:`.simulation` the one round loop, with :mod:`.setup` (building a run), :mod:`.scoring`
  (evaluation, best validation rounds) and :mod:`.checkpoints` (save, restore);
- :mod:`.client` a client's turn; :mod:`.training` the local training loop; :mod:`.optimizers`
  the local optimisers;
- :mod:`.evaluation` batched scoring; :mod:`.aggregate` weighted means; :mod:`.state` state-dict
  helpers;
- :mod:`.metrics` every figure, defined once, and :mod:`.scores` computing them;
- :mod:`.seeding` every random draw; :mod:`.recorder` where the loop's records go.
"""
