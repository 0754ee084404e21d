"""``python -m harness`` (and ``torchrun -m harness``) is the ``auh`` command."""
import sys

from harness.cli import main

sys.exit(main())
