"""Dataset builders for the example-model zoo, from Debian packages only (nothing downloaded).

* :func:`build_instruments` — instrument-family clips rendered from General MIDI phrases with
  ``fluidsynth`` and ``fluid-soundfont-gm``; held-out phrases in other keys, other seeds.
* :func:`build_speech` — spoken-language identification on ``asterisk-core-sounds-*-wav``;
  held out by prompt.
* :func:`build_percussion` — drum-sound type from ``hydrogen-drumkits`` and ``sonic-pi-samples``;
  held out by kit.

Each writes ``<out_dir>/<task>/`` (int16 audio per split, labels, sources, ``manifest.json``),
read back with :func:`load_split`. A missing Debian package raises :class:`DebianPackageMissing`
with the ``apt-get install`` line that fixes it; nothing is installed silently.
"""

from captum_freqrex.datasets._debian import DebianPackageMissing, require_packages
from captum_freqrex.datasets._instruments import FLUID_LICENCE, INSTRUMENT_FAMILIES, InstrumentFamily, build_instruments
from captum_freqrex.datasets._percussion import (
    KIT_LICENCES,
    PERCUSSION_CLASSES,
    TEST_KITS,
    build_percussion,
    drum_class,
    percussion_files,
)
from captum_freqrex.datasets._speech import SPEECH_LANGUAGES, SPEECH_LICENCES, build_speech, speech_files
from captum_freqrex.datasets._store import DatasetSplit, load_split

#: The builders by task name.
BUILDERS = {"instruments": build_instruments, "speech": build_speech, "percussion": build_percussion}

__all__ = [
    "build_instruments",
    "build_speech",
    "build_percussion",
    "load_split",
    "DatasetSplit",
    "DebianPackageMissing",
    "require_packages",
    "BUILDERS",
    "INSTRUMENT_FAMILIES",
    "FLUID_LICENCE",
    "InstrumentFamily",
    "SPEECH_LANGUAGES",
    "SPEECH_LICENCES",
    "PERCUSSION_CLASSES",
    "TEST_KITS",
    "KIT_LICENCES",
    "drum_class",
    "percussion_files",
    "speech_files",
]
