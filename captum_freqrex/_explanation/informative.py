"""Whether a certified set is worth reading: its flags, and the hints shown after a result.

A certified set can still say little: a set that is most of the spectrum ("keeping almost
everything keeps the decision"), or one far below the clip's level (a faint bin the model happens
to read, inaudible next to the clip). Such a set is *flagged*, with the next step to take.
The thresholds are the two constants below, and nowhere else (:func:`level_floor` turns the
level one into an energy for the searches that keep a set at the clip's level).

:func:`set_flags` flags one set (its record in :meth:`Explanation.summary` carries them),
:func:`summary_flags` lists every set's flags, and :func:`result_hints` is the one source of the
hints that the ``freqrex`` command prints after a result and that the HTML report shows.
"""

from __future__ import annotations

import math
from typing import Any, Dict, List, Mapping, Optional

#: A set holding more than this share of the features is flagged ``"most_of_spectrum"``.
MAX_FEATURE_SHARE = 0.5

#: A set whose loudest bin is more than ``-MIN_LEVEL_DB`` dB below the clip's loudest bin
#: (``level_db < MIN_LEVEL_DB``) is flagged ``"below_clip_level"``.
MIN_LEVEL_DB = -20.0

#: A necessary-mode answer (:class:`~captum_freqrex.Manipulation`) whose change carries more than
#: this share of the clip's energy (its SNR below ``10 log10(1 / MAX_CHANGE_SHARE)``, 3 dB) is
#: flagged ``"most_of_sound"``: removing most of the sound is no small manipulation.
MAX_CHANGE_SHARE = 0.5


def level_floor(loudest: float, below_db: float = -MIN_LEVEL_DB) -> float:
    r"""The least energy within ``below_db`` dB of ``loudest``: the level rule as an energy, for the
    searches and the shrink that keep a set at the clip's level before it is flagged.

    Args:
        loudest (float): The reference energy (the clip's loudest bin, say).
        below_db (float, optional): dB below it. Default: ``-MIN_LEVEL_DB`` (20: the flag's level)

    Returns:
        float: ``loudest * 10 ** (-below_db / 10)``.
    """
    return loudest * 10.0 ** (-below_db / 10.0)


def format_level_db(level_db: float, decimals: int = 0) -> str:
    r"""A set's level as text, signed: ``"+0 dB"``, ``"-12 dB"``; ``"silent"`` for ``-inf``.

    A level that rounds to zero is ``+0``: a set whose loudest bin is the clip's loudest up to float
    rounding (-0.0004 dB) is at the clip's level, and ``"-0 dB"`` would read as just below it.

    Args:
        level_db (float): The set's loudest bin relative to the clip's loudest bin, in dB.
        decimals (int, optional): Decimals shown. Default: 0

    Returns:
        str: The level with its sign and unit.
    """
    if math.isinf(level_db) and level_db < 0:
        return "silent"
    shown = round(level_db, decimals) + 0.0  # + 0.0 turns -0.0 into 0.0
    return f"{shown:+.{decimals}f} dB"


_BASELINE_OPTIONS = "explain(..., baselines=...); --baseline noise, pink or an audio FILE"
_OTHER_BASELINE = f"explain against another baseline ({_BASELINE_OPTIONS})"

_BANDS = "group bins into bands (explain(..., feature_mask=log_bands(...)); --bands N)"

#: The next step for each flag, named by options that exist (Python, then the command line).
NEXT_STEPS = {
    "most_of_spectrum": (
        f"{_BANDS}, give the search "
        "more queries (the default search tries other feature orders when bands leave the set scattered: "
        'explain(..., max_queries=4000); --max-queries 4000), FreqReX(model, search="interleaved") (--search interleaved), '
        f"or {_OTHER_BASELINE}"
    ),
    "below_clip_level": (
        'search along loudness tiers (FreqReX(model, search="energy"); --search energy), group bins into '
        f"bands (--bands N), or {_OTHER_BASELINE}"
    ),
}

#: Where a set's own search answers to other options than the sufficient set's: the
#: sufficient-and-necessary and complete searches stop on their own, so more queries leave them as
#: they are (``max_queries=4000`` brought none of 34 flagged sets under half the features, another
#: search order 3), while bands and another baseline brought 4-5 of 7 flagged
#: sufficient-and-necessary sets under half; the complete set stops at the input's confidence minus
#: ``complete_tolerance``, and 0.2 brought 13 of 27 under half (``benchmarks/next_steps.py``;
#: docs/method.md, "Certified but not informative").
SET_NEXT_STEPS = {
    ("sufficient_necessary", "most_of_spectrum"): (
        f"{_BANDS}, or {_OTHER_BASELINE} (its search stops on its own: more queries leave it as it is)"
    ),
    ("complete", "most_of_spectrum"): (
        "let it stop further below the clip's confidence (explain(..., complete_tolerance=0.2); "
        f"--complete-tolerance 0.2; default 0.05), {_BANDS}, or {_OTHER_BASELINE}"
    ),
}


#: The next step for a flagged necessary-mode answer: time-frequency cells, whose removal can be
#: short. It gave 3 of 7 such held-out speech answers a removal under half the clip's energy, and
#: 2 of 29 drum, instrument and voice-activity answers (``benchmarks/necessary_answers.py
#: --next-step``; docs/comparing.md): where it does not, the decision rests on most of the sound.
MANIPULATION_NEXT_STEP = (
    "search time-frequency cells, where a removal can be short (FreqReX(model, domain=StftDomain(n_fft=512)); "
    "no command-line option); where that too removes most of the sound, the decision rests on most of it"
)


def manipulation_flags(feature_share: float, snr_db: float) -> List[Dict[str, str]]:
    r"""The flags of a necessary-mode answer: why it is no small manipulation, and what to do.

    Args:
        feature_share (float): The removed features' share of the features, in [0, 1].
        snr_db (float): The SNR of the change in dB (NaN: unknown, never flagged).

    Returns:
        list of dict: One ``{"flag", "reason", "next_step"}`` per flag, ``flag`` being
        ``"most_of_spectrum"`` (``feature_share >`` :data:`MAX_FEATURE_SHARE`) or
        ``"most_of_sound"`` (the change carries over :data:`MAX_CHANGE_SHARE` of the clip's energy);
        empty when neither.
    """
    flags = []
    if feature_share > MAX_FEATURE_SHARE:
        reason = f"removes {100 * feature_share:.0f}% of the features: most of the spectrum"
        flags.append({"flag": "most_of_spectrum", "reason": reason, "next_step": MANIPULATION_NEXT_STEP})
    if not math.isnan(snr_db) and snr_db < 10.0 * math.log10(1.0 / MAX_CHANGE_SHARE):
        reason = (f"is a change at SNR {snr_db:.1f} dB: over {100 * MAX_CHANGE_SHARE:.0f}% of the clip's energy, "
                  "most of the sound")
        flags.append({"flag": "most_of_sound", "reason": reason, "next_step": MANIPULATION_NEXT_STEP})
    return flags


def next_step(flag: str, set_name: Optional[str] = None) -> str:
    r"""The next step for a flag of a set: the set's own where its search answers to other options.

    Args:
        flag (str): ``"most_of_spectrum"`` or ``"below_clip_level"``.
        set_name (str, optional): ``"sufficient"``, ``"sufficient_necessary"`` or ``"complete"``.
                    Default: None (the sufficient set's)

    Returns:
        str: The step, naming options that exist (Python, then the command line).
    """
    return SET_NEXT_STEPS.get((set_name or "", flag), NEXT_STEPS[flag])


def set_flags(size: int, feature_share: float, level_db: float, set_name: Optional[str] = None) -> List[Dict[str, str]]:
    r"""The flags of one set: why it may not be worth reading, and what to do.

    Args:
        size (int): Features in the set (the empty set is never flagged: its note says why).
        feature_share (float): The set's share of the features, in [0, 1].
        level_db (float): The set's loudest bin relative to the clip's loudest bin, in dB (NaN:
                    unknown, never flagged).
        set_name (str, optional): Which set, for its next step (:func:`next_step`). Default: None

    Returns:
        list of dict: One ``{"flag", "reason", "next_step"}`` per flag, ``flag`` being
        ``"most_of_spectrum"`` (``feature_share >`` :data:`MAX_FEATURE_SHARE`) or
        ``"below_clip_level"`` (``level_db <`` :data:`MIN_LEVEL_DB`); empty when neither.
    """
    flags = []
    if size > 0 and feature_share > MAX_FEATURE_SHARE:
        reason = f"covers {100 * feature_share:.0f}% of the features: most of the spectrum"
        flags.append({"flag": "most_of_spectrum", "reason": reason, "next_step": next_step("most_of_spectrum", set_name)})
    if size > 0 and not math.isnan(level_db) and level_db < MIN_LEVEL_DB:
        level = format_level_db(level_db)
        reason = f"has its loudest bin at {level}: far below the clip's level (more than {-MIN_LEVEL_DB:g} dB below its loudest bin)"
        flags.append({"flag": "below_clip_level", "reason": reason, "next_step": next_step("below_clip_level", set_name)})
    return flags


def summary_flags(sets: Mapping[str, Optional[Mapping[str, Any]]]) -> List[Dict[str, str]]:
    r"""Every flag of every set of a summary, each naming its set (``"set"``), in set order.

    Args:
        sets (mapping): The ``sets`` of :meth:`Explanation.summary` (None for a set not found).

    Returns:
        list of dict: ``{"set", "flag", "reason", "next_step"}`` per flag.
    """
    return [{"set": name, **flag} for name, entry in sets.items() if entry for flag in entry.get("flags", [])]


def _set_words(name: str) -> str:
    # "sufficient_necessary" -> "sufficient & necessary", "alternative_1" -> "alternative 1".
    return "sufficient & necessary" if name == "sufficient_necessary" else name.replace("_", " ")


def _baseline_words(summary: Mapping[str, Any]) -> str:
    # What the baseline was where the caller does not say: explain's default (no baselines given,
    # recorded as None) is silence; otherwise the caller's own.
    settings = summary.get("settings") or {}
    return "silence" if "baselines" in settings and settings["baselines"] is None else "given"


def result_hints(summary: Mapping[str, Any], target_name: str, baseline_kind: Optional[str] = None) -> List[str]:
    r"""The hints shown after a result: one per kind of flag (naming the sets), and one when the
    baseline alone already gives the target. The ``freqrex`` command prints them, the HTML report
    shows them: this is their one source.

    Args:
        summary (mapping): :meth:`Explanation.summary` (or the command's ``summary.json``).
        target_name (str): How to name the explained class.
        baseline_kind (str, optional): ``"silence"``, ``"noise"``, ``"pink"`` or ``"file"`` when
                    known (the command line); None names the options generally. Default: None

    Returns:
        list of str: The hints, without a ``hint:`` prefix.
    """
    hints = []
    flags = summary.get("flags") or summary_flags(summary["sets"])
    for kind in NEXT_STEPS:
        # One hint per next step: sets whose steps are the same share it.
        for step in dict.fromkeys(flag["next_step"] for flag in flags if flag["flag"] == kind):
            named = [_set_words(flag["set"]) for flag in flags if flag["flag"] == kind and flag["next_step"] == step]
            what = "most of the spectrum" if kind == "most_of_spectrum" else "far below the clip's level"
            sets = named[0] if len(named) == 1 else f"{', '.join(named[:-1])} and {named[-1]}"
            hints.append(f"the {sets} set{'s are' if len(named) > 1 else ' is'} {what}: {step}")
    found = summary.get("manipulation") or {}
    for step in dict.fromkeys(flag["next_step"] for flag in found.get("flags", [])):
        hints.append(f"the necessary-mode answer is no small manipulation: {step}")
    if summary.get("baseline_decides"):
        if baseline_kind is None:
            fix = f"run again with another baseline ({_BASELINE_OPTIONS})"
        else:
            others = [other for other in ("noise", "pink") if other != baseline_kind] + ["an audio FILE"]
            fix = f"run again with --baseline {others[0]} (or {' or '.join(others[1:])})"
        hints.append(
            f"the baseline ({baseline_kind or _baseline_words(summary)}) alone already makes the model decide {target_name}, so "
            f"these sets say little about the clip; {fix}"
        )
    return hints
