"""The default plugins: the ENC-2020 method of Ji, Wang, Peng et al. and the baselines.

One component kind per module; each is an ordinary pluggy plugin, exactly
like a third-party one.
"""

BUILTIN_PLUGINS: tuple[str, ...] = (
    "plugins.aligners",
    "plugins.backbones",
    "plugins.samplers",
    "plugins.losses",
    "plugins.ensemblers",
    "plugins.thresholders",
    "plugins.tracking",
    "plugins.datasets",
    "plugins.readers",
)
