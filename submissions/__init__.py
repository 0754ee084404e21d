"""Recipes (``*.toml``) and example submissions shipped with au-harness."""
