"""The designer's model: what the Streamlit pages edit and read, split by noun. Nothing here
imports streamlit; the design being edited is a plain config dict that may be invalid while the
user edits it (the helpers report what is wrong; only :func:`launching.launch` insists on a valid
one). Pages import the module they need, e.g. ``from engine.design import roster_table``.

- :mod:`~engine.design.document`: normalise, parse, fingerprint, JSON/YAML in and out
- :mod:`~engine.design.scenarios`: the shipped scenario templates and example data files
- :mod:`~engine.design.drafts`: autosave per browser session, named drafts
- :mod:`~engine.design.forms`: form fields generated from pydantic models (:class:`FieldSpec`)
- :mod:`~engine.design.choices`: datasets, partitioners, architectures, optimisers, devices, tiers
- :mod:`~engine.design.schema`: uploads, inspecting the data file, the schema table
- :mod:`~engine.design.images`: reading pixel columns as images (the offer), example images
- :mod:`~engine.design.split`: the partition preview and the primary metric it implies
- :mod:`~engine.design.sizes`: model sizes and knobs as text
- :mod:`~engine.design.roster`: the roster as a list of clients (defaults from ``ClientSpec``)
- :mod:`~engine.design.roster_table`: the Clients page's editable table and bulk edits
- :mod:`~engine.design.checks`: problems per client and per design, client costs
- :mod:`~engine.design.compatibility`: which strategies can run the roster
- :mod:`~engine.design.adversaries`: attacks in the roster, defences at launch
- :mod:`~engine.design.launching`: launching runs and sweeps, seeds, paired baselines

What the Runs, Results and Compare pages read lives in :mod:`engine.reporting.results`.
"""
