"""The hardware a run simulates and the hardware it runs on.

- :mod:`.tiers`: simulated device tiers (compute, bandwidth, availability, dropout), a registry;
- :mod:`.clock`: the virtual clock that turns each client's work into simulated seconds;
- :mod:`.devices`: the torch devices of this machine, memory estimates and checks.
"""
