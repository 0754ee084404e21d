"""A procedural, EmotioNet-shaped AU benchmark with ground truth (``auh synth``).

Modules: ``face`` (identity, scene, head pose), ``geometry`` (face
coordinates to pixels), ``renderer`` (drawing, AU regions), ``occluders``,
``labelmodel`` (ENC-2020-like labels), ``fit_stats`` (derives
``enc2020_stats.json`` from the ENC-2020 manual labels) and ``writer``
(the benchmark folder: write and read).
"""

# Bump when a change to the renderer or the label model changes any output
# byte: cached benchmarks are keyed by it.
RENDERER_VERSION = "1"
