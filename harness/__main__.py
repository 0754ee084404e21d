"""``python -m harness`` (and ``torchrun -m harness``) is the ``auh`` command."""
import sys
from pathlib import Path

# ``python -m`` puts the working directory first on sys.path: a ``plugins/``
# folder or a ``*.dist-info`` there would pass for au-harness's built-in or
# installed plugins. Plugins load only from installed distributions and the
# paths given with --plugin (as ``python -P`` would), so drop it, unless it is
# the source tree this harness runs from.
if sys.path and Path(sys.path[0] or ".").resolve() == Path.cwd().resolve() \
        and Path(__file__).resolve().parent.parent != Path.cwd().resolve():
    del sys.path[0]

from harness.cli import console  # noqa: E402

console()
