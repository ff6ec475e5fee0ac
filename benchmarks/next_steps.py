"""Do the flags' next steps help? Each hint's option, tried on the sets it is printed for.

A certified sufficient-and-necessary or complete set that is most of the spectrum (over half the
features) is flagged with a next step (``captum_freqrex/_explanation/informative.py``). This script
explains every clip with the defaults, and where such a set is flagged, explains the clip again
with each option a hint could name, one at a time:

* ``--bands 64`` / ``--bands 256`` (``feature_mask=log_bands(T, n)``);
* ``--baseline noise`` / ``--baseline pink`` (``noise_like(x, color)``, 30 dB below the clip's RMS);
* ``--max-queries 4000`` and ``--search interleaved`` (what the sufficient set's hint names);
* ``--complete-tolerance 0.2`` (the complete set may stop 0.2 below the clip's confidence).

Per set kind and option the table gives how many of the flagged sets the option brought under half
the features, and their median share before and with it. Clips: the zoo's shipped percussion and
speech clips, the 30 s piano and strings clips through the instruments model (``--instruments``),
the real drum recordings of ``sonic-pi-samples`` through the percussion model and four phrases of
each language of ``asterisk-core-sounds-*-wav`` through the speech model (those installed).

Usage::

    .venv/bin/python benchmarks/next_steps.py --threads 1 [--instruments]
"""

from __future__ import annotations

import argparse
import functools
import glob
import os
import statistics
import sys
import time
import warnings
from typing import Any, Callable, Dict, List, Optional, Tuple

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import flip_rates  # noqa: E402  (the results files' header)

from captum_freqrex import FreqReX, log_bands, zoo  # noqa: E402
from captum_freqrex.audio import load_audio, noise_like  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KINDS = ("sufficient_necessary", "complete")
DRUMS = "/usr/share/sonic-pi/samples/drum_*.flac"
SPEECH = "/usr/share/asterisk/sounds/{}/*.wav"
LANGUAGES = ("en", "es", "fr", "it", "ru")
PHRASES = 4  # per language: the first ones in name order

#: Option label -> (FreqReX constructor options, explain options) for a clip ``x`` of ``rate`` Hz.
Options = Callable[[torch.Tensor, int], Tuple[Dict[str, Any], Dict[str, Any]]]


def _noise(color: str) -> Options:
    return lambda x, rate: ({}, {"baselines": noise_like(x, color, generator=torch.Generator().manual_seed(0))})


def _bands(n: int) -> Options:
    return lambda x, rate: ({}, {"feature_mask": log_bands(x.shape[-1], n, sample_rate=rate).unsqueeze(0)})


OPTIONS: Dict[str, Options] = {
    "--bands 64": _bands(64),
    "--bands 256": _bands(256),
    "--baseline noise": _noise("white"),
    "--baseline pink": _noise("pink"),
    "--max-queries 4000": lambda x, rate: ({}, {"max_queries": 4000}),
    "--search interleaved": lambda x, rate: ({"search": "interleaved"}, {}),
    "--complete-tolerance 0.2": lambda x, rate: ({}, {"complete_tolerance": 0.2}),
}


#: Each zoo model loaded once (its weights are read from the package on every ``zoo.load``).
load_model = functools.lru_cache(maxsize=None)(zoo.load)


def clips(instruments: bool) -> List[Tuple[str, str, torch.Tensor]]:
    """``(model name, clip label, (1, T) waveform)`` of every clip measured."""
    found = []
    for name, count in (("percussion", 5), ("speech", 5)) + ((("instruments", 2),) if instruments else ()):
        for index in range(count):
            found.append((name, f"zoo {name} {index}", zoo.load_clip(name, index).waveform.unsqueeze(0)))
    files = [("percussion", path) for path in sorted(glob.glob(DRUMS))]
    files += [("speech", path) for language in LANGUAGES for path in sorted(glob.glob(SPEECH.format(language)))[:PHRASES]]
    for name, path in files:
        loaded = load_model(name)
        wave = load_audio(path, loaded.sample_rate, loaded.num_samples).waveform
        found.append((name, os.path.relpath(path, "/usr/share"), wave.unsqueeze(0)))
    return found


def _shares(expl: Any) -> Dict[str, Optional[float]]:
    return {kind: None if getattr(expl, kind) is None else getattr(expl, kind).feature_share for kind in KINDS}


def _flagged(expl: Any) -> List[str]:
    return [kind for kind in KINDS if getattr(expl, kind) is not None
            and any(f["flag"] == "most_of_spectrum" for f in getattr(expl, kind).flags)]


def measure(instruments: bool) -> List[Dict[str, Any]]:
    """One record per flagged set: its clip, kind, default share and share under each option."""
    records = []
    for name, label, x in clips(instruments):
        loaded = load_model(name)
        default = FreqReX(loaded.model).explain(x, seed=0)[0]
        flagged = _flagged(default)
        print(f"{label}: flagged {flagged or '-'}", file=sys.stderr, flush=True)
        if not flagged:
            continue
        with_option = {}
        for option, make in OPTIONS.items():
            built, explained = make(x, loaded.sample_rate)
            with_option[option] = _shares(FreqReX(loaded.model, **built).explain(x, seed=0, **explained)[0])
        for kind in flagged:
            records.append({"clip": label, "model": name, "kind": kind, "default": _shares(default)[kind],
                            **{option: shares[kind] for option, shares in with_option.items()}})
    return records


def _pct(value: Optional[float]) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def table(records: List[Dict[str, Any]]) -> List[str]:
    """Per set kind and option: flagged sets brought under half the features, median shares."""
    lines = ["| set | flagged sets | option | under half with it | median share (default) | median share (with it) |",
             "| --- | --- | --- | --- | --- | --- |"]
    for kind in KINDS:
        mine = [r for r in records if r["kind"] == kind]
        if not mine:
            continue
        before = statistics.median(r["default"] for r in mine)
        for option in OPTIONS:
            # A set the option did not find counts as not helped (its share as the whole input's).
            after = [1.0 if r[option] is None else r[option] for r in mine]
            helped = sum(share <= 0.5 for share in after)
            lines.append(f"| {kind.replace('_', '-and-')} | {len(mine)} | `{option}` | {helped}/{len(mine)} | "
                         f"{_pct(before)} | {_pct(statistics.median(after))} |")
    return lines


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instruments", action="store_true", help="also the zoo's 30 s instruments clips (slow)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--out", default=os.path.join(REPO, "benchmarks", "results"))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore")  # the explanations' warnings are not what is measured here
    start = time.perf_counter()
    records = measure(args.instruments)
    header = flip_rates.results_header(flip_rates.command_line("next_steps.py", argv))
    rows = [f"| {r['clip']} | {r['kind']} | {_pct(r['default'])} | " + " | ".join(_pct(r[o]) for o in OPTIONS) + " |"
            for r in records]
    text = "\n".join([
        f"{header}, {time.perf_counter() - start:.0f} s", "", *table(records), "",
        "| clip | set | default | " + " | ".join(f"`{o}`" for o in OPTIONS) + " |",
        "| --- | --- | --- |" + " --- |" * len(OPTIONS), *rows, "",
    ])
    flip_rates.write_and_print(args.out, "next_steps.md", text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
