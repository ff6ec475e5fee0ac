"""``python -m captum_freqrex``: the ``freqrex`` command (see :mod:`captum_freqrex.cli`)."""

import sys

from captum_freqrex.cli import main

if __name__ == "__main__":
    sys.exit(main())
