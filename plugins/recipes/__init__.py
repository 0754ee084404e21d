"""The shipped recipes: ``defaults.toml`` (every field's default, the paper's method; every
recipe is read on top of it), ``demo.toml`` (the paper's method shrunk for a CPU, what
``auh run`` runs with no recipe), ``paper.toml`` (the paper's full configuration), and
:mod:`plugins.recipes.ablation` (``auh ablate``'s rows)."""
