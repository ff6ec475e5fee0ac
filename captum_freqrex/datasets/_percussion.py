"""Drum-sound type (kick, snare, hi-hat, cymbal, tom) from real one-shot recordings, held out by kit.

Sources: every kit of the Debian package ``hydrogen-drumkits`` (labels from the instrument names
in each kit's ``drumkit.xml``) and the drum one-shots of ``sonic-pi-samples`` (labels from the
file names). Sticks, rim clicks, rolls, claps and other percussion are left out. Each recording is
mixed to mono, resampled, trimmed to its onset (5 ms before the first sample above 1 % of the
peak), cut to the clip length with a 50 ms fade-out, and peak-normalised to -1 dBFS.

Held-out kits (:data:`TEST_KITS`) come from makers with no other kit in the data, so no recording,
drum or microphone of the test set is in training.
"""

from __future__ import annotations

import glob
import os
import re
import xml.etree.ElementTree as ET
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from captum_freqrex.datasets._debian import require_packages
from captum_freqrex.datasets._resample import resample
from captum_freqrex.datasets._store import save_split, to_int16, write_manifest

__all__ = [
    "PERCUSSION_CLASSES",
    "TEST_KITS",
    "HYDROGEN_ROOT",
    "SONIC_PI_ROOT",
    "KIT_LICENCES",
    "build_percussion",
    "percussion_files",
    "drum_class",
]

HYDROGEN_ROOT = "/usr/share/hydrogen/data/drumkits"
SONIC_PI_ROOT = "/usr/share/sonic-pi/samples"

#: The classes, in index order.
PERCUSSION_CLASSES: Tuple[str, ...] = ("kick", "snare", "hihat", "cymbal", "tom")

#: Kits held out for testing (each from a maker with no other kit here).
TEST_KITS: Tuple[str, ...] = ("The Black Pearl 1.0", "ColomboAcousticDrumkit", "rumpf_kit_z01_h2")

#: Copyright and licence of each kit, from /usr/share/doc/hydrogen-drumkits/copyright and
#: /usr/share/doc/sonic-pi-samples/copyright.
KIT_LICENCES: Dict[str, str] = {
    "Audiophob": "soundcloud.com/audiophobdubstep, CC0",
    "BJA_Pacific": "Luc Tunguay, CC-BY-SA 3.0 US",
    "ColomboAcousticDrumkit": "2006 Marcos Guglielmetti, GPL-2+ with composition exception",
    "ElectricEmpireKit": "Artemiy Pavlov (Artemio), GPL-2+",
    "ForzeeStereo": "Vladimir Sadovnikov, Alexander Belokurov, GPL-2",
    "Gimme A Hand 1.0": "Glen MacArthur, GPL-2",
    "HardElectro1": "Artemiy Pavlov (Artemio), GPL-2+",
    "Millo-Drums_v.1": "Emiliano Grilli (Emillo), GPL-2",
    "Millo_MultiLayered2": "Emiliano Grilli (Emillo), GPL-2",
    "Millo_MultiLayered3": "Emiliano Grilli (Emillo), GPL-2",
    "The Black Pearl 1.0": "Glen MacArthur, GPL-2",
    "VariBreaks": "Artemiy Pavlov (Artemio), GPL-2+",
    "circAfrique v4": "Jim Harney, CC-BY-SA 3.0",
    "rumpf_kit_z01_h2": "Emanuel Rumpf, CC-BY 3.0",
    "sonic-pi": "freesound.org contributors (menegass, Zajo, looppool and others), CC0, via Sonic Pi",
}

_EXCLUDE = re.compile(r"stick|rim ?click|roll|clap")
_RULES = (
    ("kick", re.compile(r"\bkick|bass ?drum|bassdrum")),
    ("snare", re.compile(r"snare")),
    ("hihat", re.compile(r"hi-?hat|\bhh|hh\b|\bhat\b")),
    ("cymbal", re.compile(r"crash|ride|china|splash|cymbal")),
    ("tom", re.compile(r"\btom|tom\d|floor")),
)
_SONIC_PI = {
    "kick": re.compile(r"^(bd_.*|drum_bass_.*|drum_heavy_kick|elec_soft_kick|elec_hollow_kick)$"),
    "snare": re.compile(r"^(sn_.*|drum_snare_.*|elec_(lo_|hi_|mid_|filt_)?snare)$"),
    "hihat": re.compile(r"^drum_cymbal_(closed|open|pedal)$"),
    "cymbal": re.compile(r"^(drum_cymbal_(hard|soft)|drum_splash_.*|elec_cymbal)$"),
    "tom": re.compile(r"^(drum_tom_.*|elec_fuzz_tom)$"),
}


def drum_class(instrument_name: str) -> Optional[str]:
    r"""The class of a Hydrogen instrument name, or None when it is none of the classes.

    Args:
        instrument_name (str): E.g. "Kick (Tama Superstar 22\")", "Sabian Hat Closed".

    Returns:
        str or None: One of :data:`PERCUSSION_CLASSES`, or None.
    """
    name = instrument_name.lower()
    if _EXCLUDE.search(name):
        return None
    for label, pattern in _RULES:
        if pattern.search(name):
            return label
    return None


def _check(hydrogen_root: str, sonic_pi_root: Optional[str]) -> None:
    needs = {"hydrogen-drumkits": [hydrogen_root]}
    if sonic_pi_root is not None:
        needs["sonic-pi-samples"] = [sonic_pi_root]
    require_packages("build_percussion", needs)


def _kit_files(kit_dir: str) -> List[Tuple[str, str]]:
    root = ET.parse(os.path.join(kit_dir, "drumkit.xml")).getroot()
    ns = root.tag.split("}")[0] + "}" if root.tag.startswith("{") else ""
    out, seen = [], set()
    for instrument in root.iter(ns + "instrument"):
        name_node = instrument.find(ns + "name")
        label = drum_class(name_node.text or "") if name_node is not None else None
        if label is None:
            continue
        for node in instrument.iter(ns + "filename"):
            path = os.path.join(kit_dir, (node.text or "").strip())
            if node.text and path not in seen and os.path.exists(path):
                seen.add(path)
                out.append((label, path))
    return out


def percussion_files(
    hydrogen_root: str = HYDROGEN_ROOT, sonic_pi_root: Optional[str] = SONIC_PI_ROOT
) -> List[Tuple[str, str, str]]:
    r"""Every labelled one-shot as ``(kit, class, path)``, sorted by kit then path.

    Args:
        hydrogen_root (str, optional): Folder of the Hydrogen kits. Default:
                    /usr/share/hydrogen/data/drumkits
        sonic_pi_root (str or None, optional): Folder of the Sonic Pi samples; None leaves them
                    out. Default: /usr/share/sonic-pi/samples

    Returns:
        list of tuple: One entry per recording.

    Raises:
        DebianPackageMissing: When hydrogen-drumkits (or sonic-pi-samples, unless None) is missing.
    """
    _check(hydrogen_root, sonic_pi_root)
    out: List[Tuple[str, str, str]] = []
    for xml in sorted(glob.glob(os.path.join(hydrogen_root, "*", "drumkit.xml"))):
        kit_dir = os.path.dirname(xml)
        kit = os.path.basename(kit_dir)
        out.extend((kit, label, path) for label, path in sorted(_kit_files(kit_dir), key=lambda e: e[1]))
    if sonic_pi_root is not None:
        for path in sorted(glob.glob(os.path.join(sonic_pi_root, "*.flac"))):
            stem = os.path.splitext(os.path.basename(path))[0]
            for label, pattern in _SONIC_PI.items():
                if pattern.match(stem):
                    out.append(("sonic-pi", label, path))
    return out


def one_shot(path: str, sample_rate: int, num_samples: int) -> np.ndarray:
    r"""A recording as a clip: mono, resampled, onset-trimmed, cut with a fade, peak -1 dBFS.

    Args:
        path (str): Audio file (WAV, FLAC, AIFF).
        sample_rate (int): Target rate in Hz.
        num_samples (int): Clip length.

    Returns:
        numpy.ndarray: ``(num_samples,)`` float32.
    """
    import soundfile

    data, rate = soundfile.read(path, dtype="float32", always_2d=True)
    wave = resample(data.mean(axis=1), rate, sample_rate)
    peak = float(np.abs(wave).max()) if wave.size else 0.0
    if peak < 1e-6:
        return np.zeros(num_samples, dtype=np.float32)
    onset = int(np.argmax(np.abs(wave) > 0.01 * peak))
    wave = wave[max(onset - int(0.005 * sample_rate), 0) :][:num_samples]
    fade = min(int(0.05 * sample_rate), wave.shape[0])
    if wave.shape[0] == num_samples:
        wave = wave.copy()
        wave[-fade:] *= np.linspace(1.0, 0.0, fade, dtype=np.float32)
    wave = np.pad(wave, (0, num_samples - wave.shape[0]))
    return (wave * (10 ** (-1 / 20) / float(np.abs(wave).max()))).astype(np.float32)


def build_percussion(
    out_dir: str,
    clip_seconds: float = 1.0,
    sample_rate: int = 16000,
    test_kits: Sequence[str] = TEST_KITS,
    max_files_per_kit: Optional[int] = None,
    hydrogen_root: str = HYDROGEN_ROOT,
    sonic_pi_root: Optional[str] = SONIC_PI_ROOT,
    verbose: bool = False,
) -> str:
    r"""Build the drum-sound dataset to ``<out_dir>/percussion``.

    Needs the Debian packages ``hydrogen-drumkits`` and ``sonic-pi-samples``; nothing is
    downloaded.

    Args:
        out_dir (str): Root folder of the built datasets.
        clip_seconds (float, optional): Clip length. Default: 1.0
        sample_rate (int, optional): Sample rate in Hz. Default: 16000
        test_kits (sequence of str, optional): Kits held out. Default: :data:`TEST_KITS`
        max_files_per_kit (int, optional): Use only the first recordings of each kit (for quick
                    checks). Default: None (all)
        hydrogen_root (str, optional): Folder of the Hydrogen kits.
        sonic_pi_root (str or None, optional): Folder of the Sonic Pi samples, None to leave them out.
        verbose (bool, optional): Print progress. Default: False

    Returns:
        str: The task folder.

    Raises:
        DebianPackageMissing: When hydrogen-drumkits or sonic-pi-samples is not installed.
    """
    files = percussion_files(hydrogen_root, sonic_pi_root)
    if max_files_per_kit is not None:
        per_kit: Dict[str, int] = {}
        subset = []
        for entry in files:
            if per_kit.get(entry[0], 0) < max_files_per_kit:
                per_kit[entry[0]] = per_kit.get(entry[0], 0) + 1
                subset.append(entry)
        files = subset
    num_samples = int(round(clip_seconds * sample_rate))
    task_dir = os.path.join(out_dir, "percussion")
    counts = {}
    for split in ("train", "test"):
        chosen = [f for f in files if (f[0] in test_kits) == (split == "test")]
        audio = np.zeros((len(chosen), num_samples), dtype=np.int16)
        for row, (_, _, path) in enumerate(chosen):
            audio[row] = to_int16(one_shot(path, sample_rate, num_samples))
        labels = [PERCUSSION_CLASSES.index(label) for _, label, _ in chosen]
        sources = [f"{kit}/{os.path.basename(path)}" for kit, _, path in chosen]
        save_split(task_dir, split, audio, labels, sources)
        counts[split] = len(chosen)
        if verbose:
            print(f"  percussion/{split}: {len(chosen)} clips from {len({f[0] for f in chosen})} kits", flush=True)
    write_manifest(
        task_dir,
        {
            "task": "percussion",
            "class_names": list(PERCUSSION_CLASSES),
            "sample_rate": sample_rate,
            "splits": {s: {"n": n, "seconds": clip_seconds} for s, n in counts.items()},
            "recipe": (
                "One-shots of every hydrogen-drumkits kit (labels from drumkit.xml instrument names) "
                "and the drum one-shots of sonic-pi-samples (labels from file names); sticks, rim "
                "clicks, rolls and claps left out. Mono, resampled, trimmed to the onset, cut to "
                f"{clip_seconds:g} s with a 50 ms fade, peak -1 dBFS. Held out by kit: {', '.join(test_kits)}."
            ),
            "test_kits": list(test_kits),
            "kit_licences": {k: KIT_LICENCES.get(k, "see /usr/share/doc/hydrogen-drumkits/copyright") for k in sorted({f[0] for f in files})},
            "licence": "Per kit (kit_licences); see /usr/share/doc/hydrogen-drumkits/copyright and /usr/share/doc/sonic-pi-samples/copyright.",
        },
    )
    return task_dir
