"""The default plugins: the ENC-2020 method of Ji, Wang, Peng et al. and the baselines.

One component kind per module; each is an ordinary pluggy plugin, exactly
like a third-party one. :data:`BUILTIN_PLUGINS` also names the modules of
the distribution that add subcommands (``auh_add_commands``): the core's,
the organizer side's and ``auh bench``, in the order ``auh --help`` lists them.
"""

BUILTIN_PLUGINS: tuple[str, ...] = (
    "harness.core_cli",
    "plugins.aligners",
    "plugins.backbones",
    "plugins.samplers",
    "plugins.losses",
    "plugins.ensemblers",
    "plugins.thresholders",
    "plugins.smoothers",
    "plugins.tracking",
    "plugins.datasets",
    "plugins.benchmark_datasets",
    "plugins.readers",
    "plugins.benchmarks",
    "plugins.recipes.ablation",
    "leaderboard.scoring_cli",
    "leaderboard.export",
    "plugins.bench.cli",
)
