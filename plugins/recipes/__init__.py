"""The shipped recipes: ``demo.toml`` (the paper's method shrunk for a CPU, what
``auh run`` runs with no recipe) and ``paper.toml`` (the paper's full configuration)."""
