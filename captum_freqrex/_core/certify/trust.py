"""What makes a FreqReX result trustworthy, or not: anchors, warnings, certificate notes.

The model on the unmasked input and on the baseline alone (the *anchors*) say whether the target
is the model's decision and whether the baseline already gives it; the certification batch says
whether the model was stable. Each finding becomes a plain-language line in
``Explanation.warnings`` and a :class:`FreqReXWarning`.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any, List, Optional, Sequence, Tuple

from torch import Tensor

from captum_freqrex._core.model.decision import DecisionLike
from captum_freqrex._core.model.example import ExampleQueries
from captum_freqrex._core.model.targets import flat_target_index
from captum_freqrex._core.records import ProbeResult


class FreqReXWarning(UserWarning):
    """A FreqReX result that cannot be taken at face value (the message says why and what to do)."""


#: Peak amplitude above which a model's NaN output on the input is blamed on the input's scale.
PEAK_AMPLITUDE_HINT = 1e6


#: Largest change of the model's raw output on the unmasked input between the first query and
#: the certification batch, relative to the output's scale (max |score| + 1), that still counts as
#: the same output. Batch-composition noise of a deterministic model is ~1e-6.
STABILITY_TOLERANCE = 1e-3


@dataclass
class Anchors:
    """The model on the unmasked input and on the baseline alone, and what they imply."""

    target: int
    original: ProbeResult
    baseline: ProbeResult
    warnings: List[str]
    outputs: Tensor  # (K,) the model's raw output on the input, to check later calls against


def probe_anchors(
    queries: ExampleQueries,
    target: Any,
    decision: DecisionLike,
    mode: str,
    confidence_filter: float,
    baseline_waves: Tuple[Tensor, ...],
) -> Anchors:
    r"""The model on the unmasked input and on the baseline alone, in one model call (one each
    where the calls take one row, ``perturbations_per_eval=1``).

    The first call of an example also fixes how its outputs are read (logits or probabilities, a
    threshold): every mutant of the example is then read the same way, and a batch explains as
    each example alone.

    Args:
        queries (ExampleQueries): The example and the model caller.
        target (Any): The example's target as given (None: the model's own decision).
        decision (str, Decision or Callable): The decision to fix from the input's output.
        mode (str): ``"sufficient"`` or ``"necessary"`` (what the warnings say).
        confidence_filter (float): The least confidence a kept decision needs.
        baseline_waves (tuple of Tensor): The example's baseline waveforms.

    Returns:
        Anchors: The target index, both probes and their warnings, and the input's raw output.

    Raises:
        ValueError: When the model returns NaN or Inf on an input far outside the audio range.
    """
    # The input goes in as a copy: a model that edits its input in place must not edit the
    # caller's tensor.
    waveforms = (queries.inputs, baseline_waves)  # row 0 the input, row 1 the baseline
    try:  # the input and the baseline in one model call, or one each where calls take one row
        outputs = queries.oracle.waveform_scores(queries.example, 2, waveforms.__getitem__)
    except ValueError as error:
        peak = max(float(w.abs().max()) for w in queries.inputs)
        if "NaN or Inf" in str(error) and peak > PEAK_AMPLITUDE_HINT:
            raise ValueError(
                f"the model returned NaN or Inf on the input, whose peak amplitude {peak:.3g} is far "
                "outside the range audio models expect (about [-1, 1], or [-32768, 32767] for "
                "16-bit integers): normalise the waveform (e.g. x / x.abs().max())"
            ) from None
        raise
    oracle = queries.oracle
    resolved = oracle.decide(decision, outputs[:1])
    if target is None:
        index = int(resolved.classes(outputs[:1])[0])
    else:
        assert oracle.output_shape is not None
        index = flat_target_index(target, oracle.output_shape or (1,), resolved.num_classes(outputs[:1]))
    original, baseline = queries.probes(outputs, index)
    channels = queries.inputs[0].shape[0] if queries.inputs[0].dim() > 1 else 0
    messages = anchor_warnings(index, original, baseline, mode, confidence_filter, oracle.output_shape or (), channels)
    return Anchors(index, original, baseline, messages, outputs[0])


def _shape_hint(output_shape: Tuple[int, ...], channels: int) -> str:
    # Scores of more than one axis per waveform (per frame, per head, per channel) are read as one
    # class per entry: the same class in two frames is two classes, and equal frames tie.
    if len(output_shape) < 2:
        return ""
    shape = ", ".join(map(str, output_shape))
    hint = (
        f". The model's scores of one waveform are shaped ({shape}) and are read as "
        f"{math.prod(output_shape)} classes, one per entry (a target tuple such as "
        f"{tuple(0 for _ in output_shape)} names one), so scores per frame that agree across frames "
        "tie: pool them first (output=lambda out: out.mean(1)) or explain one frame "
        "(output=lambda out: out[:, 0]); on the command line, whose --output takes a key or an index, "
        "give --model a package.module:callable whose model returns the pooled scores"
    )
    if channels > 1 and output_shape[0] == channels:
        hint += (
            f"; their first axis is as long as the input's {channels} channels: a model of mono audio "
            "scores each channel, so pass mono audio (x.mean(1))"
        )
    return hint


def anchor_warnings(
    target: int, original: ProbeResult, baseline: ProbeResult, mode: str, confidence_filter: float,
    output_shape: Tuple[int, ...] = (), channels: int = 0,
) -> List[str]:
    """What the input and the baseline alone imply about an explanation, in plain words
    (``output_shape``: the shape of one waveform's scores, which a tie's message names where
    it has more than one axis; ``channels``: the input's channels, 0 for ``(batch, time)``)."""
    messages = []
    # Neither kept nor changed, and not for want of confidence_filter (which alone fails a clear
    # lead, margin > 0): the target ties with another class, the model has no decision to explain.
    if original.tied and (original.confidence >= confidence_filter or not original.margin > 0):
        other = f"class {original.decided}" if original.decided != target else "another class"
        messages.append(
            f"the input itself is a tie: class {target} ties with {other} (margin {original.margin:.3g}, "
            f"confidence {original.confidence:.3f}), so the model makes no decision on it to explain: "
            "there is no necessary or complete set, and a sufficient set must make class "
            f"{target} win outright; explain an input the model decides" + _shape_hint(output_shape, channels)
        )
    elif not original.passes:
        if original.decided != target:
            messages.append(
                f"the target (class {target}) is not the model's decision on the input (class "
                f"{original.decided}, confidence {original.decided_confidence:.3f}; class {target} has "
                f"{original.confidence:.3f}): the sets say which frequencies alone would make the model "
                f"decide class {target}; there is no necessary or complete set of a decision the input "
                "does not have"
            )
        else:
            messages.append(
                f"the input's confidence in class {target} ({original.confidence:.3f}) is below "
                f"confidence_filter ({confidence_filter}): only a sufficient set (one reaching the "
                "filter) is searched"
            )
    # In mode="necessary" a baseline that keeps the decision is reported once the search has run
    # (see removal_warnings): what to say depends on whether some removal changed the decision.
    if baseline.passes and not baseline_keeps_removal(original, baseline, mode):
        messages.append(
            f"the baseline alone already gives class {target} (confidence {baseline.confidence:.3f}): "
            "the empty set is sufficient, so the sufficient set says nothing about the input; "
            f"{BASELINE_FIX}"
        )
    return messages


#: What to do about a baseline that tells the input's frequencies nothing apart.
BASELINE_FIX = "explain against another baseline (baselines=..., e.g. recorded background noise)"

#: Coarser features, for a decision that only a wide removal changes.
_BANDS_FIX = "coarser features (feature_mask=log_bands(...))"


def baseline_keeps_removal(original: ProbeResult, baseline: ProbeResult, mode: str) -> bool:
    """Whether ``mode="necessary"`` explains a decision that removing every frequency keeps."""
    return mode == "necessary" and original.passes and not baseline.changed


def removal_warnings(
    target: int, original: ProbeResult, baseline: ProbeResult, mode: str, found: Optional[bool],
    queries: int = 0, stopped_by: str = "", alternatives: Sequence[str] = (), sets: bool = True,
    prefix_sets: bool = True,
) -> List[str]:
    r"""What a ``mode="necessary"`` search found where the baseline alone says little, in plain words.

    Removing every frequency is one removal among many: a model need not be monotone, so a
    baseline that keeps the decision says nothing about smaller removals, and the search runs
    anyway; the message says what it found, never that nothing could be found. A baseline that
    changes the decision gets a message only where no smaller removal the search tried did: every
    responsibility is then 0, which must not pass for a ranking.

    Args:
        target (int): The explained class.
        original (ProbeResult): The model on the unmasked input.
        baseline (ProbeResult): The model on the baseline alone (every frequency removed).
        mode (str): The search mode; only ``"necessary"`` gets a message.
        found (bool, optional): Whether the search saw a removal it queried change the decision
                    (a built-in search gives responsibility above 0 only then); None when that is
                    not known (attributions given instead of a search, or a custom search).
        queries (int, optional): Queries the search spent. Default: 0
        stopped_by (str, optional): Why it stopped (``SearchResult.stopped_by``). Default: ""
        alternatives (sequence of str, optional): What else to try, before a larger
                    ``max_queries`` and another baseline (e.g. another search). Default: ()
        sets (bool, optional): Whether sets are extracted from the ranking (``explain``), which
                    the message then speaks of. Default: True
        prefix_sets (bool, optional): Whether the sufficient-and-necessary set is the ranking's
                    shortest flipping prefix (``explain(..., max_joint_queries=0)``), searched as if
                    removing more never undid a change, so that one may be missing; False where the
                    joint search looks for it (the default), and the message does not say so.
                    Default: True

    Returns:
        list of str: No message, or one.
    """
    if mode == "necessary" and original.passes and baseline.changed and found is False:
        return [_only_everything_flips(target, baseline, queries, stopped_by, alternatives, sets)]
    if not baseline_keeps_removal(original, baseline, mode):
        return []
    first = (
        f"the baseline alone does not change the decision (class {target}, confidence "
        f"{baseline.confidence:.3f}): removing every frequency keeps it"
    )
    # Prefix sets: the necessary size is bracketed as if removing more never undid a change; with a
    # decision that removing everything keeps, that finds none. The joint search does not assume it.
    prefixes = (
        "the sets are prefixes of the ranking, searched as if removing more never undid a change, "
        "so a sufficient-and-necessary set may be missing: check the top of the ranking with "
        "metrics.necessity"
    )
    check = "check the top of the ranking with metrics.necessity or metrics.perturbation_success_rate"
    if found is None:
        return [f"{first}, but removing part of them may still change it (a model need not be monotone); "
                f"{prefixes if sets and prefix_sets else check}"]
    if found:
        said = (
            f"{first}, yet the search found removals of some frequencies that change it (the model is "
            "not monotone in what is removed), and the responsibility ranks them"
        )
        return [f"{said}; {prefixes}" if sets and prefix_sets else said]
    tries = [*alternatives, "a larger max_queries", BASELINE_FIX.replace("explain against ", "")]
    return [
        f"{first}, and no removal the search tried within its budget did ({queries} queries, stopped by "
        f"{stopped_by!r}), so every responsibility is 0; the model may still be non-monotone (a removal "
        f"the search did not try may change the decision): try {', '.join(tries[:-1])} or {tries[-1]}"
    ]


def _only_everything_flips(
    target: int, baseline: ProbeResult, queries: int, stopped_by: str, alternatives: Sequence[str], sets: bool
) -> str:
    # The baseline changes the decision, yet no smaller removal the search tried did: the search
    # credits no feature for the whole spectrum, so an all-zero answer must not pass unremarked.
    ranking = (
        "every responsibility is 0 and the ranking the sets are read from is by loudness alone (the "
        "sufficient-and-necessary set, where one is given, is a certified removal that does change it, and "
        "Explanation.manipulation is that set shrunk while its removal still does)"
        if sets else "every responsibility is 0"
    )
    tries = [*alternatives, "a larger max_queries", _BANDS_FIX]
    return (
        f"removing every frequency changes the decision (the baseline alone gives class {baseline.decided}, "
        f"not {target}), but no smaller removal the search tried within its budget did ({queries} queries, "
        f"stopped by {stopped_by!r}), so {ranking}; the decision may rest on much of the spectrum at once, "
        f"or on a removal the search did not try: try {', '.join(tries[:-1])} or {tries[-1]}"
    )


def set_note(
    name: str, size: int, holds: bool, stable: bool, kept: ProbeResult, removed: Optional[ProbeResult],
    tie_tolerance: Optional[float],
) -> str:
    """Why a set is not certified, or what is special about it, in plain words."""
    if not stable:
        return "not certified: the model's output on the unmasked input changed between calls"
    tie = f"within tie_tolerance {tie_tolerance}, which counts as decision not changed"
    if not holds:
        if not kept.passes:
            if kept.tied:
                return f"kept alone, the target ties with class {kept.decided} ({tie}: not kept)"
            return (
                f"kept alone, the model decides class {kept.decided} (confidence in the target "
                f"{kept.confidence:.4f})"
            )
        if name == "sufficient_necessary" and removed is not None:
            if removed.tied:
                return f"with the set removed, the target ties with class {removed.decided} ({tie})"
            return f"with the set removed, the model still gives the target (confidence {removed.confidence:.4f})"
        return f"kept alone, the confidence in the target is {kept.confidence:.4f}, below the original's minus the tolerance"
    notes = []
    if size == 0:
        notes.append("the empty set: the baseline alone gives the decision")
    if removed is not None and removed.tied:
        notes.append(f"with the set removed, the target ties with class {removed.decided} ({tie})")
    return "; ".join(notes)


def bin_level(energy: Tensor, bins: Tensor) -> Tensor:
    """Per-bin energy of each feature (its energy over its number of bins): comparable across band
    sizes, what a set's loudest bin is measured in."""
    return energy / bins.clamp(min=1)


def loudness(mask: Tensor, energy: Tensor, bins: Tensor) -> Tuple[float, float]:
    """A set's share of the clip's energy and its loudest bin (:func:`bin_level`) relative to the
    clip's, in dB."""
    level = bin_level(energy, bins)
    total, peak = float(energy.sum()), float(level.max())
    if not mask.any() or total <= 0 or peak <= 0:
        return (0.0 if total > 0 else math.nan), -math.inf if peak > 0 else math.nan
    share = float(energy[mask].sum()) / total
    loudest = float(level[mask].max())
    return share, (10.0 * math.log10(loudest / peak) if loudest > 0 else -math.inf)


def issue_warnings(messages: List[str], example: int, batch_size: int, stacklevel: int = 3) -> None:
    """Issue each message as a :class:`FreqReXWarning`, naming the example in a batch."""
    for message in messages:
        where = f"example {example}: " if batch_size > 1 else ""
        warnings.warn(where + message, FreqReXWarning, stacklevel=stacklevel)
