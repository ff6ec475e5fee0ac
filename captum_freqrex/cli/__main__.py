"""``python -m captum_freqrex.cli``: the ``freqrex`` command, as when ``cli`` was one module."""

import sys

from captum_freqrex.cli import main

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
