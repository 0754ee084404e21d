"""Benchmarks of the harness against naive and published baselines (``auh bench``).

One module per topic (``bench_components``, ``bench_training``,
``bench_alignment``, ``bench_demo``), rows in the format of
:mod:`plugins.bench.rows`, the command in :mod:`plugins.bench.cli`.
"""
