"""Results that cannot be trusted say so: misbehaving models, undecided targets, deciding baselines.

Every test here uses a model whose causes are known by construction (tests/known_models.py) or
that misbehaves on purpose (outputs that drift between calls, exact ties, logits that look like
probabilities), and checks that FreqReX either gets the right answer or says plainly why not.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch
from known_models import SAMPLE_RATE, Drifting, SpectrumCoverageDetector, ToneClassifier, ToneDetector, bin_of, impulse, tone
from torch import Tensor, nn

from captum_freqrex import FreqReX, FreqReXWarning, StftDomain, ThresholdDecision, log_bands, metrics
from captum_freqrex._core.model import memory
from captum_freqrex._core.search.band_screening import BandScreening, _first_level
from captum_freqrex._core.model.decision import ArgmaxDecision

SECONDS = 0.5
T = int(SECONDS * SAMPLE_RATE)
BIN_440, BIN_1000, BIN_1500 = bin_of(440, T), bin_of(1000, T), bin_of(1500, T)


def clip(*tones: tuple) -> Tensor:
    """A (1, T) clip of the given (Hz, amplitude) tones."""
    return sum(tone(hz, SECONDS, amp) for hz, amp in tones).unsqueeze(0)


def explain_quietly(explainer: FreqReX, x: Tensor, **kwargs):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        expl = explainer.explain(x, **kwargs)
    return expl, [str(w.message) for w in caught if issubclass(w.category, FreqReXWarning)]


# ------------------------------------------------------------------ targets and filters


def test_a_target_the_model_does_not_decide_gets_its_sufficient_set_and_a_warning():
    """440 Hz is louder, so the model says class 0; class 1 (1000 Hz) is reached by 1000 Hz alone."""
    x = clip((440, 1.0), (1000, 0.5))
    model = ToneClassifier([440, 1000])
    (expl,), said = explain_quietly(FreqReX(model), x, target=1, max_queries=300)
    assert expl.original.decided == 0 and not expl.target_is_decision
    assert any("not the model's decision" in m for m in said) and expl.warnings == said
    assert expl.sufficient is not None and expl.sufficient.certified
    assert expl.sufficient.mask[BIN_1000] and not expl.sufficient.mask[BIN_440]
    kept = metrics.sufficiency(model, x, expl.sufficient.mask.unsqueeze(0), target=1)
    assert bool(kept.sufficient[0]) and int(kept.decided[0]) == 1
    # No necessary or complete set of a decision the input does not have.
    assert expl.sufficient_necessary is None and expl.complete is None
    with pytest.warns(FreqReXWarning, match="not the model's decision"):
        resp = FreqReX(model).attribute(x, target=1, max_queries=300)
    assert int(resp[0].argmax()) == BIN_1000 and resp.sum() > 0


def test_a_confidence_filter_above_the_original_confidence_still_finds_a_set():
    """With 1000 Hz competing, the input's confidence in 440 Hz is 0.99; 440 Hz alone gives more."""
    x = clip((440, 1.0), (1000, 0.55))
    model = ToneClassifier([440, 1000])
    original = float(model(x).softmax(1)[0, 0])
    (expl,), said = explain_quietly(FreqReX(model), x, confidence_filter=(1 + original) / 2, max_queries=300)
    assert any("below confidence_filter" in m for m in said)
    assert expl.sufficient is not None and expl.sufficient.certified and expl.sufficient.mask[BIN_440]
    assert expl.sufficient.kept_confidence >= (1 + original) / 2


def test_a_baseline_that_already_gives_the_decision_is_reported():
    x = clip((440, 1.0))
    model = ToneClassifier([440, 1000])
    baseline = tone(440, SECONDS, 0.8)  # the baseline alone says "440 Hz"
    (expl,), said = explain_quietly(FreqReX(model), x, baselines=baseline, max_queries=200)
    assert expl.baseline_decides and expl.baseline.decided == 0
    assert any("baseline alone already gives" in m for m in said)
    summary = expl.summary()
    assert summary["baseline_decides"] and summary["warnings"] == said
    assert expl.sufficient.size == 0 and "empty set" in expl.sufficient.certificate.note
    with pytest.warns(FreqReXWarning, match="baseline alone already gives"):
        FreqReX(model).attribute(x, baselines=baseline, max_queries=200)
    # Against silence, nothing to report.
    (plain,), said = explain_quietly(FreqReX(model), x, max_queries=200)
    assert not said and not plain.baseline_decides and plain.sufficient.size == 1


# ------------------------------------------------------------------ a baseline that keeps the decision


class BothOrNeither(nn.Module):
    """Class 1 when 440 Hz and 1 kHz are both present or both absent, class 0 when only one is.

    Not monotone in what is removed: removing everything (silence) keeps class 1, removing only
    one of the two tones flips it to class 0. The logit of class 1 is the product of the two
    tones' margins, so it is graded and positive exactly when both margins share a sign.
    """

    def __init__(self) -> None:
        super().__init__()
        self.detector = ToneDetector([440, 1000], 0.0)

    def forward(self, x: Tensor) -> Tensor:
        margins = 10.0 * (self.detector.energies(x) - 0.3)
        agree = margins[:, 0] * margins[:, 1]
        return torch.stack([-agree, agree], dim=1)


class UnlessTwoKilohertz(nn.Module):
    """Class 1 unless a 2 kHz tone is present: removing frequencies can never add it, so on a clip
    without 2 kHz no removal changes the decision (monotone, nothing to find)."""

    def __init__(self) -> None:
        super().__init__()
        self.detector = ToneDetector([2000], 0.0)

    def forward(self, x: Tensor) -> Tensor:
        margin = 10.0 * (self.detector.energies(x)[:, 0] - 0.3)
        return torch.stack([margin, -margin], dim=1)


@pytest.mark.parametrize("search", ["band_screening", "refinement", None], ids=["band_screening", "refinement", "default"])
def test_necessary_mode_finds_a_flipping_removal_the_silent_baseline_does_not_show(search):
    x = clip((440, 1.0), (1000, 1.0), (2500, 0.5))
    model = BothOrNeither()
    silence = torch.zeros_like(x)
    assert model(x).argmax(1).item() == 1 and model(silence).argmax(1).item() == 1  # the premise
    explainer = FreqReX(model, search=search)
    (expl,), said = explain_quietly(explainer, x, mode="necessary", max_queries=250, seed=0)
    assert expl.original.passes and not expl.baseline.changed
    assert explainer.last_search[0].queries > 0  # it searched, past the two anchor queries
    top = int(expl.ranking[0])
    assert top in (BIN_440, BIN_1000) and expl.feature_responsibility[top] > 0
    # Certified by the metrics, independently of the search: removing the top bin alone flips.
    removed = torch.zeros_like(expl.feature_responsibility, dtype=torch.bool)
    removed[top] = True
    check = metrics.necessity(model, x, removed.unsqueeze(0))
    assert bool(check.necessary[0]) and int(check.decided[0]) == 0
    fooled = metrics.perturbation_success_rate(model, x, expl.feature_responsibility.unsqueeze(0), k=1)
    assert bool(fooled.flipped[0])
    if search == "band_screening":  # the 2.5 kHz distractor's band does not flip when removed
        assert expl.feature_responsibility[bin_of(2500, T)] == 0
    # The warning keeps what is true (the baseline keeps the decision) and claims no impossibility.
    assert expl.warnings == said and len([m for m in said if "baseline alone does not change" in m]) == 1
    assert any("found removals of some frequencies that change it" in m for m in said)
    assert not any("cannot change" in m or "nothing to find" in m for m in said)
    # The joint search looks for the sufficient-and-necessary set, so the warning does not say that
    # one may be missing (here none exists: kept alone, a set keeps the decision only with both tones
    # or neither, and removed it changes it only with one); with the ranking's prefixes it does.
    assert expl.sufficient_necessary is None and not any("may be missing" in m for m in said)
    _, prefix_said = explain_quietly(explainer, x, mode="necessary", max_queries=250, seed=0, max_joint_queries=0)
    assert any("the sets are prefixes of the ranking" in m and "may be missing" in m for m in prefix_said)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        resp = explainer.attribute(x, mode="necessary", max_queries=250, seed=0)
    # A piece the budget left unsplit shares its value, so a tone is in the top tier, not always argmax.
    assert max(resp[0, BIN_440], resp[0, BIN_1000]) == resp[0].max() > 0
    assert not any("cannot change" in str(w.message) for w in caught)


def test_band_screening_resolves_both_flipping_tones_bin_by_bin():
    """The single bins of each flipping band are queried: both tones get responsibility 1, the
    other members of their flipping bands less, every band whose removal keeps the decision 0."""
    x = clip((440, 1.0), (1000, 1.0))
    explainer = FreqReX(BothOrNeither(), search=BandScreening(stop_at_single=False))
    with pytest.warns(FreqReXWarning, match="yet the search found removals") as caught:
        resp = explainer.attribute(x, mode="necessary", max_queries=200)[0]
    # attribute() returns no sets, so its warning does not speak of them.
    assert not any("sufficient-and-necessary" in str(w.message) for w in caught)
    assert resp[BIN_440] == 1.0 and resp[BIN_1000] == 1.0
    assert explainer.last_search[0].details["single_feature_flips"] == 2
    # Credit stays inside the first-level bands (equal- or log-width) that hold a tone: only
    # their removals flip the decision.
    near = torch.zeros_like(resp, dtype=torch.bool)
    screening = BandScreening()
    for lo, hi in _first_level(resp.numel(), screening.n_bands, screening.log_bands):
        if lo <= BIN_440 < hi or lo <= BIN_1000 < hi:
            near[lo:hi] = True
    near[[BIN_440, BIN_1000]] = False
    credited_far = ((resp > 0) & ~near).nonzero().squeeze(1).tolist()
    assert credited_far == [BIN_440, BIN_1000]
    assert torch.all(resp[near] < 1.0)
    # By default the screening stops at the first single bin whose removal flips: nothing smaller
    # flips the decision, so one of the two tones is the answer, for fewer queries.
    first = FreqReX(BothOrNeither(), search="band_screening")
    with pytest.warns(FreqReXWarning):
        quick = first.attribute(x, mode="necessary", max_queries=200)[0]
    result = first.last_search[0]
    assert result.stopped_by == "minimal" and result.details["single_feature_flips"] == 1
    assert int((quick == 1.0).sum()) == 1 and (quick[BIN_440] == 1.0 or quick[BIN_1000] == 1.0)
    assert result.queries < explainer.last_search[0].queries


@pytest.mark.parametrize("search", ["band_screening", "refinement", None], ids=["band_screening", "refinement", "default"])
def test_necessary_mode_with_no_flipping_removal_says_what_was_tried(search):
    x = clip((440, 1.0), (1000, 0.5))
    model = UnlessTwoKilohertz()
    explainer = FreqReX(model, search=search)
    (expl,), said = explain_quietly(explainer, x, mode="necessary", max_queries=120, seed=0)
    assert (expl.feature_responsibility == 0).all()
    queries = explainer.last_search[0].queries
    assert 0 < queries <= 120
    (message,) = [m for m in said if "baseline alone does not change" in m]
    assert f"no removal the search tried within its budget did ({queries} queries" in message
    assert "may still be non-monotone" in message and "a larger max_queries" in message
    # never suggest the search in use (the default screens bands in necessary mode)
    assert ("search='band_screening'" in message) == (search == "refinement")
    assert "cannot change" not in message and "nothing to find" not in message
    # Whatever the search tried, the removals really do not change the decision.
    top = metrics.perturbation_success_rate(model, x, expl.feature_responsibility.unsqueeze(0), k=[1, 5])
    assert not bool(top.flipped.any())


@pytest.mark.parametrize("sets", [False, True], ids=["attribute", "explain"])
def test_necessary_mode_where_only_removing_everything_flips_says_every_value_is_0(sets):
    # Class 1 while more than 40% of the bins are present: removing every frequency (the silent
    # baseline) changes the decision, removing any half of them does not. The screening's sets are
    # all narrower, so no feature is credited, and the all-zero answer is said, not left to look
    # like a ranking.
    x = impulse(T).unsqueeze(0)
    model = SpectrumCoverageDetector(share=0.4)
    assert model(torch.zeros_like(x)).argmax(dim=1).item() == 0 and model(x).argmax(dim=1).item() == 1
    explainer = FreqReX(model)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if sets:
            responsibility = explainer.explain(x, mode="necessary", max_queries=120, seed=0)[0].feature_responsibility
        else:
            responsibility = explainer.attribute(x, mode="necessary", max_queries=120, seed=0)[0]
    said = [str(w.message) for w in caught if issubclass(w.category, FreqReXWarning)]
    assert (responsibility == 0).all()
    queries = explainer.last_search[0].queries
    (message,) = [m for m in said if "removing every frequency changes the decision" in m]
    assert "the baseline alone gives class 0, not 1" in message
    assert f"no smaller removal the search tried within its budget did ({queries} queries" in message
    assert "every responsibility is 0" in message and "coarser features" in message
    assert ("by loudness alone" in message) == sets
    # Removing the top of that ranking indeed changes nothing.
    top = metrics.perturbation_success_rate(model, x, responsibility.reshape(1, -1), k=[1, 5])
    assert not bool(top.flipped.any())


def test_necessary_mode_where_only_a_wide_removal_flips_credits_the_narrowest_wide_part():
    # Class 1 while more than 90% of the bins are present: removing an eighth of them flips it,
    # which no band, core or single bin of the screening holds. The narrowest flipping part of the
    # wide splits is the answer (1 / its size each), certified by re-query: no warning of zeros.
    x = impulse(T).unsqueeze(0)
    model = SpectrumCoverageDetector(share=0.9)
    explainer = FreqReX(model)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        responsibility = explainer.attribute(x, mode="necessary", max_queries=200, seed=0)[0]
    result = explainer.last_search[0]
    width = result.details["wide_flip"]
    n = responsibility.numel()
    assert width is not None and n / 8 - 1 <= width <= n / 8 + 1
    assert result.queries <= 200 and float(responsibility.min()) > 0
    part = responsibility == responsibility.max()
    assert int(part.sum()) >= width
    assert not any("removing every frequency changes" in str(w.message) for w in caught)
    # Removing the narrowest wide part (the top of the ranking) changes the decision.
    removed = first_part(part, width)
    assert int(removed.nonzero().flatten().diff().max()) == 1  # one contiguous part
    without = torch.fft.irfft(torch.fft.rfft(x) * (~removed).float(), n=T)
    assert model(without).argmax(dim=1).item() == 0 and model(x).argmax(dim=1).item() == 1


def first_part(top: Tensor, width: int) -> Tensor:
    """The first ``width`` features of ``top`` (a contiguous wide part) as a bool mask."""
    ids = top.nonzero().flatten()[:width]
    mask = torch.zeros_like(top)
    mask[ids] = True
    return mask


def test_necessary_mode_that_finds_a_flip_with_a_flipping_baseline_says_nothing_of_zeros():
    x = clip((440, 1.0), (1000, 0.5))
    model = ToneClassifier([440, 1000])
    assert model(x).argmax(dim=1).item() == 0 and model(torch.zeros_like(x)).argmax(dim=1).item() != 0
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        responsibility = FreqReX(model).attribute(x, mode="necessary", max_queries=200, seed=0)[0]
    assert responsibility.argmax().item() == bin_of(440, T)
    assert not any("removing every frequency changes" in str(w.message) for w in caught)


def test_necessary_mode_with_attributions_does_not_claim_what_no_search_tried():
    x = clip((440, 1.0), (1000, 1.0))
    model = BothOrNeither()
    scores = torch.zeros(1, T // 2 + 1)
    scores[0, BIN_1000] = 1.0
    (expl,), said = explain_quietly(FreqReX(model), x, mode="necessary", attributions=scores)
    (message,) = [m for m in said if "baseline alone does not change" in m]
    assert "a model need not be monotone" in message and "cannot change" not in message
    # Sufficient mode keeps its own message about a baseline that already gives the decision.
    (plain,), said = explain_quietly(FreqReX(model), x, attributions=scores)
    assert any("baseline alone already gives" in m for m in said)
    assert not any("baseline alone does not change" in m for m in said)


# ------------------------------------------------------------------ logits vs probabilities


def test_threshold_decisions_read_scores_once_per_call():
    auto = ThresholdDecision()
    # Per batch, "auto" used to flip between probabilities and logits.
    as_logits = auto.resolved(torch.tensor([[1.4]]))
    assert as_logits.scores == "logits" and as_logits.classes(torch.tensor([[0.1], [1.4]])).tolist() == [1, 1]
    as_probs = auto.resolved(torch.tensor([[0.1]]))
    assert as_probs.classes(torch.tensor([[0.1]])).tolist() == [0]
    with pytest.raises(ValueError, match="scores='logits'"):
        as_probs.classes(torch.tensor([[0.1], [1.4]]))
    assert ArgmaxDecision().resolved(torch.tensor([[0.2, 0.8]])).scores == "probabilities"
    with pytest.raises(ValueError, match="logits"):
        ArgmaxDecision().resolved(torch.tensor([[0.2, 0.8]])).passes(torch.tensor([[3.0, -1.0]]), torch.tensor([0]))


class SingleLogit(nn.Module):
    """One logit: 2 * (magnitude at 440 Hz) - 1.5. The input's logit is 0.5 (in [0, 1])."""

    def __init__(self) -> None:
        super().__init__()
        self.detector = ToneDetector([440], 0.0)

    def forward(self, x: Tensor) -> Tensor:
        return 2.0 * self.detector.energies(x)[:, 0] - 1.5


def test_a_single_logit_in_zero_one_is_never_read_two_ways():
    x = clip((440, 1.0))
    model = SingleLogit()
    assert 0 <= float(model(x)) <= 1
    # "auto" reads the input's 0.5 as a probability; a mutant's -1.5 then contradicts it.
    with pytest.raises(ValueError, match="scores='logits'"):
        FreqReX(model).explain(x, max_queries=200)
    decision = ThresholdDecision(scores="logits")
    expl = FreqReX(model, decision=decision).explain(x, max_queries=200)[0]
    assert expl.certified and expl.sufficient_necessary.mask[BIN_440]
    removed = metrics.necessity(model, x, expl.sufficient_necessary.mask.unsqueeze(0), decision=decision)
    assert bool(removed.necessary[0])


# ------------------------------------------------------------------ responsibility


def any_of(*bins: int):
    """Class 1 when any of the tones is present (each alone suffices)."""
    return ToneDetector([b * SAMPLE_RATE / T for b in bins], threshold=0.3)


def all_of(*bins: int):
    return ToneDetector([b * SAMPLE_RATE / T for b in bins], threshold=0.3, require_all=True)


class TwoOfThree(nn.Module):
    """Class 1 when at least two of three scattered tones are present."""

    def __init__(self, bins) -> None:
        super().__init__()
        self.detector = ToneDetector([b * SAMPLE_RATE / T for b in bins], 0.0)

    def forward(self, x: Tensor) -> Tensor:
        present = (self.detector.energies(x) > 0.5).float().sum(1)
        margin = 5.0 * (present - 1.5)
        return torch.stack([-margin, margin], dim=1)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize(
    "name, model, causes",
    [
        ("any of two", any_of(BIN_440, BIN_1500), [BIN_440, BIN_1500]),
        ("all of two", all_of(BIN_440, BIN_1500), [BIN_440, BIN_1500]),
        ("two of three", TwoOfThree([BIN_440, BIN_1000, BIN_1500]), [BIN_440, BIN_1000, BIN_1500]),
    ],
)
def test_frequencies_the_model_ignores_get_exactly_zero(name, model, causes, seed):
    """The property docs/method.md promises, once the searches resolve their pieces to single bins."""
    x = clip((440, 1.0), (1000, 1.0), (1500, 1.0), (2500, 1.0))
    resp = FreqReX(model).attribute(x, max_queries=None, n_samples=8, seed=seed)[0]
    ignored = torch.ones_like(resp, dtype=torch.bool)
    ignored[causes] = False
    assert torch.all(resp[ignored] == 0), f"{name}: {float(resp[ignored].sum()):.3f} of the mass on ignored bins"
    assert abs(float(resp[causes].sum()) - 1.0) < 1e-9 and torch.all(resp[causes] >= 0)


def test_a_necessary_set_larger_than_the_sufficient_set():
    """Either tone suffices, so one bin is sufficient but removing it changes nothing: the
    sufficient-and-necessary set needs both."""
    x = clip((440, 1.0), (1500, 1.0), (2500, 1.0))
    model = any_of(BIN_440, BIN_1500)
    # Every search runs (no stopping rule), so the ranking credits both alternatives.
    expl = FreqReX(model).explain(x, seed=0, convergence_top_k=None)[0]
    assert expl.sufficient.size == 1 and expl.sufficient.certified
    nec = expl.sufficient_necessary
    assert nec.size == 2 and nec.certified and nec.mask[BIN_440] and nec.mask[BIN_1500]
    assert expl.flip_class == 0
    check = metrics.necessity(model, x, nec.mask.unsqueeze(0))
    assert bool(check.necessary[0]) and not bool(metrics.necessity(model, x, expl.sufficient.mask.unsqueeze(0)).necessary[0])


# ------------------------------------------------------------------ misbehaving models


def test_a_model_whose_output_changes_between_calls_is_not_certified():
    x = clip((440, 1.0))
    (expl,), said = explain_quietly(FreqReX(Drifting()), x, max_queries=200)
    assert any("changed between calls" in m for m in said)
    for name, chosen in expl.sets.items():
        assert chosen is None or not chosen.certified, name
    assert not expl.certified
    assert expl.model_stable is False and expl.summary()["model_stable"] is False
    (steady,), _ = explain_quietly(FreqReX(Drifting().detector), x, max_queries=200)
    assert steady.model_stable is True and steady.certified



class NormalisedToneDetector(nn.Module):
    """A 440 Hz detector behind a batch norm of the waveform: in training mode every call updates
    the norm's running statistics (and its output depends on the rest of the batch)."""

    def __init__(self) -> None:
        super().__init__()
        self.norm = nn.BatchNorm1d(1)
        self.detector = ToneDetector([440], 0.3)

    def forward(self, x: Tensor) -> Tensor:
        return self.detector(self.norm(x.unsqueeze(1)).squeeze(1))


def test_a_model_left_in_training_mode_keeps_its_batch_norm_statistics():
    """Hundreds of mutants through a model in training mode would leave its running statistics,
    and so its eval-mode outputs, changed after the explanation: explain, the metrics and
    compare_methods (IntegratedGradients' gradient calls included) put them back, and leave the
    model in training mode."""
    from captum_freqrex.compare import compare_methods

    model = NormalisedToneDetector().train()
    x = clip((440, 1.0))
    before = {name: value.clone() for name, value in model.state_dict().items()}
    (expl,), said = explain_quietly(FreqReX(model), x, max_queries=200)
    # Its output depends on the batch: it is flagged as ever, nothing certified.
    assert expl.model_stable is False and not expl.certified and any("changed between calls" in m for m in said)
    metrics.necessity(model, x, expl.sufficient.mask.unsqueeze(0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        compare_methods(model, x, methods=["IntegratedGradients"], ig_steps=8, n_steps=4, ks=(1,))
    assert model.training and model.norm.training
    for name, value in model.state_dict().items():
        assert torch.equal(value, before[name]), name

class TieWhenRemoved(nn.Module):
    """Class 1 when 440 Hz is present; without it both scores are exactly 1.0, a tie that argmax
    breaks towards class 0."""

    def __init__(self) -> None:
        super().__init__()
        self.detector = ToneDetector([440], 0.0)

    def forward(self, x: Tensor) -> Tensor:
        present = (self.detector.energies(x)[:, 0] > 0.5).float()
        return torch.stack([torch.ones_like(present), 1.0 + present], dim=1)


def test_an_exact_tie_is_not_a_change_of_decision():
    x = clip((440, 1.0), (1000, 1.0))
    model = TieWhenRemoved()
    expl = FreqReX(model).explain(x, max_queries=200)[0]
    assert expl.sufficient.certified and expl.sufficient.mask[BIN_440]
    # Removing 440 Hz only ties: no set is certified as changing the decision.
    nec = expl.sufficient_necessary
    assert nec is None or not nec.certified
    removed = metrics.necessity(model, x, expl.sufficient.mask.unsqueeze(0))
    assert not bool(removed.necessary[0])



class FrameScores(nn.Module):
    """A 440 Hz detector's two scores repeated over five frames: scores shaped (5, 2) a waveform."""

    def __init__(self) -> None:
        super().__init__()
        self.detector = ToneDetector([440], 0.3)

    def forward(self, x: Tensor) -> Tensor:
        return self.detector(x).unsqueeze(1).repeat(1, 5, 1)


def test_frame_scores_that_tie_across_frames_are_named_with_the_fix():
    """Scores per frame are read as one class per entry, so equal frames tie: the warning names
    the scores' shape and how to pool them, and the pooled model gets its certified 440 Hz bin."""
    x = clip((440, 1.0))
    (tied,), said = explain_quietly(FreqReX(FrameScores()), x, max_queries=200)
    assert not tied.certified
    message = next(m for m in said if "the input itself is a tie" in m)
    assert "shaped (5, 2)" in message and "10 classes" in message and "out.mean(1)" in message
    assert "package.module:callable" in message  # the command line's --output takes no function
    (pooled,), said = explain_quietly(FreqReX(FrameScores(), output=lambda out: out.mean(1)), x, max_queries=200)
    assert pooled.certified and pooled.sufficient.mask[BIN_440] and pooled.sufficient.size == 1
    assert not any("is a tie" in m for m in said)


def test_a_model_of_mono_audio_given_stereo_is_told_to_take_mono():
    """A mono detector applied to each channel of a stereo clip scores (2, 2) a clip, and equal
    channels tie: the warning says the first axis is the channels' and to pass mono audio."""
    detector = ToneDetector([440], 0.3)

    def per_channel(w: Tensor) -> Tensor:
        return detector(w.reshape(-1, w.shape[-1])).reshape(w.shape[0], w.shape[1], 2)

    stereo = clip((440, 1.0)).unsqueeze(1).repeat(1, 2, 1)
    (tied,), said = explain_quietly(FreqReX(per_channel), stereo, max_queries=200)
    message = next(m for m in said if "the input itself is a tie" in m)
    assert "shaped (2, 2)" in message and "input's 2 channels" in message and "x.mean(1)" in message
    (mono,), _ = explain_quietly(FreqReX(detector), stereo.mean(1), max_queries=200)
    assert mono.certified and mono.sufficient.mask[BIN_440]


def test_a_multi_label_model_is_explained_one_label_at_a_time():
    """Independent sigmoids for 440 Hz and 1 kHz: each label, selected with output=, is read as
    present above 0.5, and its sufficient set is its own tone's bin."""
    x = clip((440, 1.0), (1000, 0.5))
    tones = [ToneDetector([440], 0.3), ToneDetector([1000], 0.3)]

    def labels(w: Tensor) -> Tensor:
        return torch.sigmoid(torch.stack([detector(w)[:, 1] for detector in tones], 1))

    for k, frequency in enumerate((440, 1000)):
        (expl,), _ = explain_quietly(FreqReX(labels, output=lambda out, k=k: out[:, k : k + 1]), x, max_queries=200)
        assert "ThresholdDecision(threshold=0.5, scores='probabilities'" in expl.summary()["settings"]["decision"]
        assert expl.certified and expl.sufficient.size == 1 and expl.sufficient.mask[bin_of(frequency, T)]

def test_a_model_editing_its_input_in_place_leaves_the_callers_tensor_alone():
    detector = ToneDetector([440], 0.3)

    def vandal(w: Tensor) -> Tensor:
        out = detector(w)
        w.mul_(0.0)
        return out

    x = clip((440, 1.0))
    before = x.clone()
    expl = FreqReX(vandal).explain(x, max_queries=200)[0]
    assert torch.equal(x, before)
    assert expl.sufficient.mask[BIN_440] and expl.certified


# ------------------------------------------------------------------ clear errors


def test_bad_arguments_raise_clear_errors():
    detector = ToneDetector([440], 0.3)
    x = clip((440, 1.0))
    explainer = FreqReX(detector)
    cases = [
        (dict(target=1.7), TypeError, "int class index, .* got float 1.7"),
        (dict(target=torch.tensor(1.0)), TypeError, "integer class indices"),
        (dict(target=[True]), TypeError, "got bool True"),
        (dict(seed=2**70), ValueError, "seed must be"),
        (dict(seed=1.5), TypeError, "seed must be an int"),
        (dict(n_samples=2.5), TypeError, "n_samples must be an int"),
        (dict(max_queries=0), ValueError, "max_queries"),
        (dict(perturbations_per_eval="8"), TypeError, "perturbations_per_eval"),
        (dict(generator=0), TypeError, "torch.Generator"),
    ]
    for kwargs, error, message in cases:
        with pytest.raises(error, match=message):
            explainer.attribute(x, **kwargs)
    with pytest.raises(ValueError, match="empty dimension"):
        explainer.attribute(torch.zeros(1, 0, T))
    with pytest.raises(ValueError, match="meta"):
        explainer.attribute(torch.zeros(1, T, device="meta"))
    with pytest.raises(ValueError, match="shorter than n_fft"):
        FreqReX(detector, domain=StftDomain(n_fft=8192)).attribute(x)
    with pytest.raises(ValueError, match="hop_length must be in"):
        StftDomain(n_fft=256, hop_length=256)
    with pytest.raises(TypeError, match="n_fft must be an int"):
        StftDomain(n_fft=256.0)
    with pytest.raises(TypeError, match=r"SpectralDomain instance such as .*got str 'stft'"):
        FreqReX(detector, domain="stft")
    with pytest.raises(TypeError, match=r"got the class StftDomain: pass StftDomain\(\)"):
        FreqReX(detector, domain=StftDomain)
    with pytest.raises(TypeError, match="got str 'stft'"):
        log_bands(T, 8, sample_rate=16000, domain="stft")
    with pytest.raises(TypeError, match="got int 3"):
        metrics.perturbation_success_rate(detector, x, torch.ones(1, T // 2 + 1), domain=3)


def test_a_model_that_divides_by_the_inputs_peak_says_the_silent_baseline_gives_nan():
    """A detector on the peak-normalised input returns NaN on silence, the default baseline: the
    error names the silent waveforms and the two fixes; a model whose outputs are NaN on every
    waveform gets the plain message. Against low noise the normalising model is explained."""
    detector = ToneDetector([440], 0.3)

    def normalised(waves: Tensor) -> Tensor:
        return detector(waves / waves.abs().amax(dim=-1, keepdim=True))

    x = clip((440, 1.0), (1000, 0.5))
    with pytest.raises(ValueError, match=r"NaN or Inf on 1 of the 2 waveforms of one call, each of them silent") as raised:
        FreqReX(normalised).explain(x)
    assert "+ 1e-8" in str(raised.value) and "baselines=" in str(raised.value)
    with pytest.raises(ValueError, match=r"on 2 of the 2 waveforms of one call; FreqReX needs finite scores"):
        FreqReX(lambda waves: detector(waves) * float("nan")).explain(x)
    noise = 1e-3 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
    sufficient = FreqReX(normalised).explain(x, baselines=noise)[0].sufficient
    assert sufficient.certified and sufficient.mask[bin_of(440, T)]


class WantsChannelAxis(nn.Module):
    """A tone detector behind a 1x1 Conv1d front end: it takes ``(batch, 1, time)``, and a
    ``(batch, time)`` batch reads as one unbatched example of ``batch`` channels (torch's own
    error), a single ``(1, time)`` waveform as one channel without a batch (no row of scores)."""

    def __init__(self) -> None:
        super().__init__()
        self.front = nn.Conv1d(1, 1, 1, bias=False)
        nn.init.ones_(self.front.weight)
        self.detector = ToneDetector([440], 0.3)

    def forward(self, waves: Tensor) -> Tensor:
        return self.detector(self.front(waves)[:, 0])


def test_a_model_that_takes_another_waveform_layout_gets_the_input_shape_to_pass():
    """FreqReX calls the model on waveforms shaped as the input: a (batch, 1, time) model given a
    (1, time) clip fails, and the note names the input's fix (x.unsqueeze(1)), not
    perturbations_per_eval=1 (on one row it scores no row); so does a (batch, time) model given
    (1, 1, time). With the input so shaped, each is explained and certified at its tone."""
    x = clip((440, 1.0), (1000, 0.5))
    model = WantsChannelAxis().eval()
    with pytest.raises(RuntimeError, match="channels") as raised:
        FreqReX(model).explain(x)
    (note,) = raised.value.__notes__
    assert "(batch, 1, time)" in note and "x.unsqueeze(1)" in note and "perturbations_per_eval" not in note
    with pytest.raises(IndexError) as raised:  # one row per call: the detector gets no batch axis
        FreqReX(model).explain(x, perturbations_per_eval=1)
    assert "x.unsqueeze(1)" in raised.value.__notes__[0]
    fixed = FreqReX(model).explain(x.unsqueeze(1))[0].sufficient
    assert fixed.certified and fixed.mask[bin_of(440, T)] and int(fixed.mask.sum()) == 1

    def mixes_channel_axis(waves: Tensor) -> Tensor:  # (batch, channels, time) mixed down: no batch of (batch, time)
        return model.detector(waves.mean(dim=-2, keepdim=True))

    with pytest.raises(ValueError, match=r"returned shape \(1, 2\) for a batch of 2") as raised:
        FreqReX(mixes_channel_axis).explain(x)
    assert "x.unsqueeze(1)" in raised.value.__notes__[0]

    detector = ToneDetector([440], 0.3)

    def batch_by_time(waves: Tensor) -> Tensor:
        if waves.dim() != 2:
            raise ValueError(f"expected (batch, time) waveforms, got {tuple(waves.shape)}")
        return detector(waves)

    with pytest.raises(ValueError, match="expected") as raised:
        FreqReX(batch_by_time).explain(x.unsqueeze(1))
    assert "(batch, time)" in raised.value.__notes__[0] and "x.squeeze(1)" in raised.value.__notes__[0]
    assert FreqReX(batch_by_time).explain(x)[0].sufficient.certified


def test_a_model_that_takes_one_waveform_at_a_time_is_explained_with_one_row_per_call():
    """perturbations_per_eval=1 makes every model call one row, the first (the input and the
    baseline, which went in together whatever the bound) included: the same responsibility and
    sets as in batches. Without it the model's own error gets a note naming the option."""
    detector = ToneDetector([440], 0.3)
    rows = []

    def one_at_a_time(waves: Tensor) -> Tensor:
        assert waves.shape[0] == 1, f"one waveform at a time, got {waves.shape[0]}"
        rows.append(waves.shape[0])
        return detector(waves)

    x = clip((440, 1.0), (1000, 0.5))
    with pytest.raises(AssertionError) as raised:
        FreqReX(one_at_a_time).explain(x)
    assert "runs on one of them alone" in raised.value.__notes__[0] and "perturbations_per_eval=1" in raised.value.__notes__[0]

    def broken(waves: Tensor) -> Tensor:
        raise RuntimeError("no weights loaded")

    with pytest.raises(RuntimeError, match="no weights loaded") as raised:
        FreqReX(broken).explain(x)
    assert not getattr(raised.value, "__notes__", None)  # it fails on one waveform too: no such advice
    rows.clear()
    explainer = FreqReX(one_at_a_time)
    single = explainer.explain(x, perturbations_per_eval=1)[0]
    batched = FreqReX(detector).explain(x)[0]
    assert explainer.last_stats.forward_calls == explainer.last_stats.queries == len(rows) and set(rows) == {1}
    assert torch.equal(single.responsibility, batched.responsibility)
    assert torch.equal(single.sufficient.mask, batched.sufficient.mask) and single.sufficient.certified


class _Float32Model(nn.Module):
    # A linear read of the first samples: float32 weights, as most models have.
    def __init__(self) -> None:
        super().__init__()
        self.read = nn.Linear(64, 2, bias=False)
        with torch.no_grad():  # class 0 when the first samples sum above 0: silence is a tie
            self.read.weight.copy_(torch.stack([torch.ones(64), -torch.ones(64)]))

    def forward(self, waves: torch.Tensor) -> torch.Tensor:
        return self.read(waves[:, :64])


@pytest.mark.parametrize("call", [lambda m: m, lambda m: m.forward])
def test_a_float64_clip_through_a_float32_model_fails_with_a_note_that_names_the_input(call):
    # soundfile.read gives float64 unless told otherwise: the model's own error speaks of matrix
    # dtypes, and the note says which input and what to pass.
    model = _Float32Model()
    x = clip((440, 1.0)).double()
    with pytest.raises(RuntimeError) as raised:
        FreqReX(call(model)).explain(x)
    (note,) = raised.value.__notes__
    assert "torch.float64" in note and "weights are torch.float32" in note and "x.to(torch.float32)" in note
    # The same clip as float32 runs; a model that casts its input itself takes float64 as it is.
    assert FreqReX(model).explain(x.float())[0].sufficient.certified
    casting = lambda waves: model(waves.float())  # noqa: E731
    assert FreqReX(casting).explain(x)[0].sufficient.certified


@pytest.mark.parametrize(
    "outputs, message",
    [
        (lambda w: w[:, :2] > 0, "torch.bool scores"),
        (lambda w: torch.fft.rfft(w)[:, :2], "complex"),
        (lambda w: w[:, :2].long(), "torch.int64 scores"),
        (lambda w: {"scores": w[:, :2], "hidden": w}, r"keys \[.scores., .hidden.\] and no .logits.*output="),
    ],
)
def test_model_outputs_that_are_not_real_scores_are_refused(outputs, message):
    with pytest.raises(TypeError, match=message):
        FreqReX(outputs).attribute(clip((440, 1.0)), max_queries=200)


def test_a_pass_function_returning_scores_is_refused():
    detector = ToneDetector([440], 0.3)
    with pytest.raises(TypeError, match="must return booleans"):
        FreqReX(detector, decision=lambda out, target: out.softmax(1)[:, 1]).attribute(clip((440, 1.0)))
    # Integer 0/1 verdicts are booleans in all but dtype.
    resp = FreqReX(detector, decision=lambda out, target: (out.argmax(1) == target).int()).attribute(
        clip((440, 1.0)), max_queries=200
    )
    assert resp[0, BIN_440] == resp[0].max() > 0


def test_absurd_amplitudes_are_blamed_on_the_input():
    """A log-power front end overflows on 1e30-amplitude audio: the error names the input."""

    def log_power(w: Tensor) -> Tensor:
        power = w.square().mean(1, keepdim=True)  # inf in float32
        return torch.cat([power.log(), -power.log()], dim=1)

    with pytest.raises(ValueError, match="peak amplitude 1e\\+30"):
        FreqReX(log_power).attribute(clip((440, 1e30)))
    with pytest.raises(ValueError, match="model returned NaN or Inf"):
        FreqReX(lambda w: torch.full((w.shape[0], 2), float("nan"))).attribute(clip((440, 1.0)))


def test_long_clips_that_cannot_fit_fail_up_front(monkeypatch):
    monkeypatch.setattr(memory, "_available_memory_bytes", lambda device: 512 * 1024**2)
    calls = []

    def model(w: Tensor) -> Tensor:
        calls.append(w.shape[0])
        return w[:, :2]

    with pytest.raises(MemoryError, match="GiB"):
        FreqReX(model).attribute(torch.zeros(1, 16000 * 600))
    assert calls == []  # nothing was computed before the estimate


def test_sets_report_their_share_of_the_energy_and_their_level():
    """A loud 440 Hz tone (the cause) and a 1000 Hz tone 20 dB below it (ignored)."""
    x = clip((440, 1.0), (1000, 0.1))
    expl = FreqReX(ToneDetector([440], 0.3)).explain(x, max_queries=200)[0]
    chosen = expl.sufficient
    assert chosen.size == 1 and chosen.mask[BIN_440]
    # By hand: the energy of a bin is |X|^2, so 1 / (1 + 0.01) of the energy sits at 440 Hz.
    assert abs(chosen.energy_share - 1 / 1.01) < 1e-4 and abs(chosen.level_db) < 1e-6
    assert expl.summary()["sets"]["sufficient"]["energy_share"] == pytest.approx(1 / 1.01, abs=1e-4)
    quiet = FreqReX(ToneDetector([1000], 0.05)).explain(x, max_queries=200)[0].sufficient
    assert quiet.mask[BIN_1000] and abs(quiet.level_db - (-20.0)) < 1e-3


def test_files_of_an_explanation_refuse_what_they_cannot_write(tmp_path):
    """A tuple explanation has no single WAV; a fractional rate has no WAV header."""
    from captum_freqrex.audio import save_explanation_wavs, save_wav

    x = clip((440, 1.0))
    expl = FreqReX(ToneDetector([440], 0.3)).explain((x,), max_queries=200)[0]
    with pytest.raises(ValueError, match="tuple of 1 inputs"):
        save_explanation_wavs(expl, str(tmp_path), SAMPLE_RATE)
    with pytest.raises(ValueError, match="whole-number sample rate"):
        save_wav(str(tmp_path / "a.wav"), x[0], 22050.5)
    assert not (tmp_path / "a.wav").exists()


class ThreeWayTie(nn.Module):
    """Three outputs that are always equal: every input is an exact tie."""

    def forward(self, x: Tensor) -> Tensor:
        return x.mean(-1, keepdim=True).expand(-1, 3) * 0.0 + 1.0


@pytest.mark.parametrize("target, confidence_filter", [(None, 0.0), (2, 0.0), (None, 0.5)])
def test_an_input_that_is_itself_a_tie_is_reported_as_a_tie(target, confidence_filter):
    x = torch.randn(1, 8, generator=torch.Generator().manual_seed(0)) + 1
    explainer = FreqReX(ThreeWayTie())
    (expl,), said = explain_quietly(
        explainer, x, target=target, confidence_filter=confidence_filter, max_queries=50, seed=0
    )
    assert expl.original.tied and expl.warnings == said
    assert len(said) == 1 and said[0].startswith("the input itself is a tie: class ")
    other = "another class" if target is None else "class 0"
    assert f"ties with {other} (margin 0, confidence 0.333)" in said[0]
    assert "confidence_filter" not in said[0] and "not the model's decision" not in said[0]


_UNDER_ADDRESS_LIMIT = r"""
import resource, sys, torch
from captum_freqrex import FreqReX
with open("/proc/self/status") as status:
    size = next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmSize:"))
# 1 GiB of address space left: a 10-minute clip at 16 kHz needs more (about 1.7 GiB).
resource.setrlimit(resource.RLIMIT_AS, (size + 1024**3, resource.RLIM_INFINITY))
try:
    FreqReX(lambda w: w[:, :2]).attribute(torch.zeros(1, 16000 * 600))
except MemoryError as error:
    print("MemoryError:", error)
    sys.exit(0)
print("no MemoryError")
sys.exit(1)
"""


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads the process's size from /proc")
def test_an_address_space_limit_is_read_and_a_long_clip_fails_up_front():
    # Under `ulimit -v` the machine's free memory says nothing: without reading the limit the
    # explanation started and died inside the FFT library with an unrelated error.
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", _UNDER_ADDRESS_LIMIT], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "MemoryError: explaining 9,600,000 samples per example needs about" in done.stdout
    assert "GiB are available on cpu" in done.stdout


def test_the_memory_bound_is_the_least_of_machine_cgroup_and_address_space(monkeypatch):
    monkeypatch.setattr(memory, "_meminfo_available", lambda: 20 * 1024**3)
    monkeypatch.setattr(memory, "_cgroup_free", lambda: 3 * 1024**3)
    monkeypatch.setattr(memory, "_address_space_free", lambda: None)
    assert memory._available_memory_bytes(torch.device("cpu")) == 3 * 1024**3
    monkeypatch.setattr(memory, "_address_space_free", lambda: 1024**3)
    assert memory._available_memory_bytes(torch.device("cpu")) == 1024**3
    for name in ("_meminfo_available", "_cgroup_free", "_address_space_free"):
        monkeypatch.setattr(memory, name, lambda: None)
    assert memory._available_memory_bytes(torch.device("cpu")) == 4 * 1024**3  # nothing known
