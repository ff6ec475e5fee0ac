"""The default explanation: the strategy chosen per example, and searches that stop at the answer.

Known answers by construction (tests/known_models.py and test_search.py's HarmonicSum): a tone
detector decided by one bin, a detector that needs two tones together, 12 harmonics that bands
cannot cut apart from the partials between them, and a classifier whose removal flips. Every set
is re-queried here by the test.
"""

from __future__ import annotations

import pytest
import torch
from known_models import (
    SAMPLE_RATE, BlockedTones, HiddenPartial, SpectrumCoverageDetector, ToneClassifier, ToneDetector, bin_of, hidden_partial_clip,
    impulse, tone,
)
from test_search import HARMONICS, PARTIALS, HarmonicSum, harmonic_clip, one_hot

from captum_freqrex import FreqReX
from captum_freqrex._core.search import auto
from captum_freqrex._core.search.auto import (
    SCATTERED_MIN, TAIL_SCALE, AutoSearch, loud_peak_check, loud_peaks_first, loudest_peaks,
)
from captum_freqrex._core.search.base import RefinementOptions, SearchContext, SearchResult, SetVerdicts
from captum_freqrex._core.search.band_screening import BandScreening
from captum_freqrex._core.search.adaptive import AdaptiveRefinement
from captum_freqrex._core.search.partition import PartitionRefinement
from captum_freqrex.metrics import insertion_curve

N_BINS = SAMPLE_RATE // 2 + 1


def test_one_decisive_bin_that_is_the_loudest_peak_is_found_before_any_refinement(detector, tone_clip):
    explainer = FreqReX(detector)
    expl = explainer.explain(tone_clip)[0]
    result = explainer.last_search[0]
    # The 440 Hz tone is the loudest peak: the first model call (the peaks within 20 dB of the
    # loudest alone, the three tones, and the two loudest together) finds it, and a one-feature
    # set is the smallest (the baseline alone fails): no refinement.
    assert expl.stopped_by == "minimal" and result.details["strategy"] == "loud peak"
    assert result.queries == 4 and result.sets.shape[0] == 1
    assert result.details["loud_peaks"] == [bin_of(440, SAMPLE_RATE)]
    assert result.responsibility.nonzero().flatten().tolist() == [bin_of(440, SAMPLE_RATE)]
    assert expl.sufficient.size == 1 and expl.sufficient.mask[bin_of(440, SAMPLE_RATE)]
    assert expl.sufficient.certified and detector(expl.waveform("sufficient").unsqueeze(0)).argmax(1).item() == 1
    # The rule off: every search runs, for the same one-bin answer.
    whole = FreqReX(detector).explain(tone_clip, convergence_top_k=None)[0]
    assert whole.stopped_by in ("searches", "max_queries") and whole.responsibility_queries > 50 * expl.responsibility_queries
    assert torch.equal(whole.sufficient.mask, expl.sufficient.mask)


def test_a_quieter_peak_that_passes_alone_is_found_by_the_first_peaks_asked(tone_clip):
    # The 1 kHz distractor decides (6 dB below the 440 Hz tone): one call asks the three tones
    # (the peaks within 20 dB of the loudest) alone and the two loudest together, 1 kHz passes
    # alone, and nothing else is asked.
    model = ToneDetector([1000], threshold=0.25)
    explainer = FreqReX(model)
    expl = explainer.explain(tone_clip)[0]
    result = explainer.last_search[0]
    assert result.details["strategy"] == "loud peak" and result.queries == 4
    assert expl.sufficient.size == 1 and expl.sufficient.mask[bin_of(1000, SAMPLE_RATE)] and expl.sufficient.certified
    assert expl.sufficient.level_db == pytest.approx(-6.0, abs=0.5)


class LoudToneUnlessSecond(torch.nn.Module):
    """Class 1 when 440 Hz is present and either 1 kHz is absent or 3.3 kHz is present: not
    monotone along a loudest-first ranking (440 Hz alone passes; with 1 kHz and 2.5 kHz it fails;
    with 3.3 kHz too it passes again)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        level = torch.fft.rfft(x).abs() / (x.shape[-1] / 2)
        a, b, c = (level[:, bin_of(f, x.shape[-1])] for f in (440, 1000, 3300))
        margin = torch.minimum(a - 0.5, torch.maximum(0.3 - b, c - 0.02))
        return torch.stack([-margin, margin], dim=1)


def test_without_the_shrink_the_sufficient_prefix_is_at_most_the_loud_peak_that_passed(tone_clip):
    # The search saw 440 Hz pass alone, and it leads the ranking (then the loudest bins: 1 kHz,
    # 2.5 kHz, 3.3 kHz). The prefix extraction's first probes (3 features: fails; 6: passes) would
    # bracket the sufficient size at 4; told that the top 1 passed, it answers 1.
    x = tone_clip + 0.05 * tone(3300).unsqueeze(0)
    model = LoudToneUnlessSecond()
    explainer = FreqReX(model)
    expl = explainer.explain(x, shrink=False)[0]
    assert explainer.last_search[0].details["strategy"] == "loud peak"
    assert expl.sufficient.size == 1 and expl.sufficient.mask[bin_of(440, SAMPLE_RATE)] and expl.sufficient.certified
    # Re-queried: the top 1 passes, the top 3 do not, the top 4 do.
    keep = torch.zeros(3, N_BINS)
    for row, k in enumerate((1, 3, 4)):
        keep[row, expl.ranking[:k]] = 1.0
    kept = torch.fft.irfft(torch.fft.rfft(x) * keep, n=x.shape[-1])
    assert model(kept).argmax(1).tolist() == [1, 0, 1]


def test_a_decisive_bin_far_below_the_clip_is_left_to_the_refinement(tone_clip):
    # A bin 30 dB below the loudest is not asked before the search (a set there is flagged): the
    # refinement finds it.
    x = tone_clip + 0.03 * tone(3000).unsqueeze(0)
    model = ToneDetector([3000], threshold=0.02)
    explainer = FreqReX(model)
    expl = explainer.explain(x)[0]
    result = explainer.last_search[0]
    assert result.details["strategy"] == "frequency" and expl.stopped_by == "minimal"
    assert expl.sufficient.size == 1 and expl.sufficient.mask[bin_of(3000, SAMPLE_RATE)] and expl.sufficient.certified
    assert expl.sufficient.level_db < -20.0


def test_two_needed_loud_tones_are_found_as_the_two_loudest_peaks_together(tone_clip):
    # Neither tone passes alone; the two loudest peaks together do: asked in the first call (the
    # three tones alone, then the two loudest together), a set of two settles the run ("small").
    model = ToneDetector([440, 1000], threshold=0.2, require_all=True)
    explainer = FreqReX(model)
    expl = explainer.explain(tone_clip)[0]
    result = explainer.last_search[0]
    # One more query: without 440 (1 kHz alone) the set fails, so both are credited.
    assert expl.stopped_by == "small" and result.details["strategy"] == "loud peaks" and result.queries == 5
    expected = one_hot(N_BINS, [bin_of(440, SAMPLE_RATE), bin_of(1000, SAMPLE_RATE)])
    assert result.details["loud_peaks"] == [bin_of(440, SAMPLE_RATE), bin_of(1000, SAMPLE_RATE)]
    assert expl.sufficient.certified and torch.equal(expl.sufficient.mask, expected)
    assert model(expl.waveform("sufficient").unsqueeze(0)).argmax(1).item() == 1


def test_of_three_loudest_peaks_that_pass_together_the_one_not_needed_gets_nothing(tone_clip):
    # 440 Hz and 2.5 kHz are needed, 1 kHz (the second loudest) is not: the three loudest pass
    # together; 1 kHz, whose removal keeps the decision, gets no responsibility and is not in the set.
    model = ToneDetector([440, 2500], threshold=0.2, require_all=True)
    explainer = FreqReX(model)
    expl = explainer.explain(tone_clip)[0]
    result = explainer.last_search[0]
    assert result.details["loud_peaks"] == [bin_of(f, SAMPLE_RATE) for f in (440, 1000, 2500)]
    assert result.responsibility.nonzero().flatten().tolist() == [bin_of(440, SAMPLE_RATE), bin_of(2500, SAMPLE_RATE)]
    expected = one_hot(N_BINS, [bin_of(440, SAMPLE_RATE), bin_of(2500, SAMPLE_RATE)])
    assert torch.equal(result.sets[0], expected.bool())
    assert expl.sufficient.certified and torch.equal(expl.sufficient.mask, expected)


def test_five_needed_tones_converge_once_a_search_finds_no_smaller_set():
    hz = [300, 700, 1100, 1900, 3100]
    x = sum(tone(f) for f in hz).unsqueeze(0)
    model = ToneDetector(hz, threshold=0.2, require_all=True)
    explainer = FreqReX(model)
    expl = explainer.explain(x)[0]
    assert expl.stopped_by == "converged"
    searches = explainer.last_search[0].sets
    assert searches is not None and 2 <= searches.shape[0] < 8  # stopped before the cap of n_samples
    assert expl.sufficient.certified and torch.equal(expl.sufficient.mask, one_hot(N_BINS, [bin_of(f, SAMPLE_RATE) for f in hz]))


def test_the_stopping_rule_is_seeded_and_batch_invariant(tone_clip):
    model = ToneDetector([440, 1000], threshold=0.2, require_all=True)
    batch = torch.cat([tone_clip, 0.9 * tone_clip])
    together = FreqReX(model).explain(batch, seed=3)
    for i, expl in enumerate(together):
        alone = FreqReX(model).explain(batch[i : i + 1], seed=3)[0]
        assert alone.stopped_by == expl.stopped_by and alone.responsibility_queries == expl.responsibility_queries
        assert torch.equal(alone.responsibility, expl.responsibility)


def test_the_default_search_is_auto_and_refines_the_loud_bands_when_no_loud_peak_passes(tone_clip):
    # 440 Hz and a 3 kHz tone 30 dB below it are both needed: no set of the peaks within 20 dB of
    # the loudest passes (440 Hz alone), the bands around the two loudest peaks do, and the
    # refinement inside them credits exactly the two tones.
    x = tone_clip + 0.03 * tone(3000).unsqueeze(0)
    model = ToneDetector([440, 3000], threshold=0.02, require_all=True)
    explainer = FreqReX(model)
    assert isinstance(explainer.search, AutoSearch)
    default = explainer.attribute(x, seed=2, max_queries=300)
    assert explainer.last_search[0].details["strategy"] == "loud band"
    assert default[0].nonzero().flatten().tolist() == [bin_of(440, SAMPLE_RATE), bin_of(3000, SAMPLE_RATE)]
    for search in (AutoSearch(), "auto"):
        same = FreqReX(model, search=search).attribute(x, seed=2, max_queries=300)
        torch.testing.assert_close(same, default, rtol=0, atol=0)
    # With the stopping rule off nothing is asked before the refinement: the model's calls begin
    # with those of the refinement along frequency order run alone (the checks after it use the
    # queries its settled steps did not ask).
    calls: dict = {"auto": [], "plain": []}

    def recorded(name):
        def forward(waves):
            calls[name].append(waves.clone())
            return model(waves)
        return forward

    FreqReX(recorded("auto")).attribute(x, seed=2, max_queries=300, convergence_top_k=None)
    FreqReX(recorded("plain"), search=PartitionRefinement(prefer="energy")).attribute(
        x, seed=2, max_queries=300, convergence_top_k=None)
    assert len(calls["auto"]) > len(calls["plain"]) > 2
    assert all(torch.equal(ours, alone) for ours, alone in zip(calls["auto"], calls["plain"]))


def test_causes_scattered_among_loud_peaks_are_found_in_the_loud_bands_exactly():
    # Twelve harmonics, all needed, between twelve equally loud partials the model ignores: no
    # few loudest peaks pass, and bands over the whole spectrum cannot cut the harmonics from the
    # partials; the bands around the 32 loudest peaks hold all of them, and the refinement inside
    # those bands gives exactly the harmonics, in a third of the queries of the escalation to a
    # probe of feature orders that ran here before (815 search queries; the probe path itself is
    # tested below on a spectrum without peaks).
    x, model = harmonic_clip(), HarmonicSum()
    bands = FreqReX(model, search="refinement").explain(x, seed=0)[0]
    # Bands cannot cut the harmonics from the partials: a prefix of hundreds of bins, which the
    # shrink's 64 queries take down to a few dozen, not to the twelve.
    assert bands.sufficient.size > 2 * len(HARMONICS) and bands.sufficient.certificate.shrink.prefix_size > 100
    explainer = FreqReX(model)
    expl = explainer.explain(x, seed=0)[0]
    details = explainer.last_search[0].details
    assert details["strategy"] == "loud band" and details["loud_band"] == len(HARMONICS)
    assert expl.responsibility_queries <= 300
    sufficient = expl.sufficient
    assert sufficient.certified and torch.equal(sufficient.mask, one_hot(x.shape[-1] // 2 + 1, HARMONICS))
    assert not sufficient.mask[PARTIALS].any() and not sufficient.flags
    assert model(expl.waveform("sufficient").unsqueeze(0)).argmax(1).item() == 1
    # The probe alone picks the loudness order here and finds the same harmonics.
    probe = FreqReX(model, search=AdaptiveRefinement(prefer="energy"))
    alone = probe.explain(x, seed=0)[0]
    assert probe.last_search[0].details["order"] == "energy"
    assert torch.equal(alone.sufficient.mask, sufficient.mask)


def test_where_no_loud_band_passes_the_loudest_bins_are_asked_and_refined():
    """Five tones, all needed, beside a quiet one that loses the decision wherever little else is
    kept (BlockedTones): every band around the loud peaks holds the quiet tone and fails; the 8
    loudest bins (the five and three louder tones the model ignores) pass, and the refinement
    inside them gives exactly the five, at the clip's level, in about 110 queries. The refinement
    over bands alone ends on thousands of bins after 1,200."""
    seconds, causes, others = 10, [500, 900, 1300, 1700, 2100], [2600, 3000, 3400]
    clip = sum(tone(f, seconds) for f in causes) + sum(tone(f, seconds, 0.8) for f in others) + tone(500.3, seconds, 0.3)
    clip = (clip + 2.0 * torch.randn(clip.shape, generator=torch.Generator().manual_seed(0))).unsqueeze(0)
    model = BlockedTones(causes, 500.3, clip.shape[-1])
    assert model(clip).argmax(1).item() == 1
    explainer = FreqReX(model)
    expl = explainer.explain(clip)[0]
    details = explainer.last_search[0].details
    assert details["strategy"] == "loud tier" and details["loud_tier"] == 8 and details["loud_band"] == len(causes)
    sufficient = expl.sufficient
    assert sufficient.mask.nonzero().flatten().tolist() == [bin_of(f, clip.shape[-1]) for f in causes]
    assert sufficient.certified and sufficient.level_db == 0.0 and not sufficient.flags
    assert model(expl.waveform("sufficient").unsqueeze(0)).argmax(1).item() == 1
    assert expl.stats.queries <= 150
    bands = FreqReX(model, search="refinement").explain(clip)[0]
    assert bands.sufficient.size > 100 and bands.stats.queries > 1000


def test_scattered_above_abandons_an_order_after_the_first_search():
    x, model = harmonic_clip(), HarmonicSum()
    explainer = FreqReX(model, search=PartitionRefinement(scattered_above=SCATTERED_MIN))
    explainer.attribute(x, seed=0)
    result = explainer.last_search[0]
    assert result.stopped_by == "scattered" and result.sets is not None and result.sets.shape[0] == 1
    for bad in (-1, 2.5, True, "16"):
        with pytest.raises(ValueError, match="scattered_above must be None or a non-negative int"):
            PartitionRefinement(scattered_above=bad)


def test_the_default_necessary_search_is_band_screening():
    model = ToneClassifier([440, 1000, 2500]).eval()
    x = (tone(440) + 0.9 * tone(1000) + 0.2 * tone(2500)).unsqueeze(0)
    explainer = FreqReX(model)
    default = explainer.attribute(x, mode="necessary", max_queries=300)
    assert explainer.last_search[0].details["strategy"] == "band_screening"
    screened = FreqReX(model, search=BandScreening()).attribute(x, mode="necessary", max_queries=300)
    torch.testing.assert_close(default, screened, rtol=0, atol=0)
    top = int(default.argmax())
    assert top == bin_of(440, SAMPLE_RATE)  # removing 440 Hz alone hands the decision to 1 kHz
    removed = x - torch.fft.irfft(torch.fft.rfft(x) * one_hot(N_BINS, [top]), n=x.shape[-1])
    assert model(removed).argmax(1).item() == 1


@pytest.mark.filterwarnings("ignore:the baseline alone does not change the decision")
def test_the_default_necessary_search_finds_a_flipping_bin_that_no_band_holding_it_flips():
    # Removing the partial at 3.1 kHz alone flips the decision; removing any band that holds it
    # and its two neighbours raises the confidence instead, so the descent through the bands
    # never looks there. The spectral peaks screened alongside find it.
    model, x = HiddenPartial(3100), hidden_partial_clip(3100)
    k = bin_of(3100, x.shape[-1])
    explainer = FreqReX(model)
    runs = [explainer.attribute(x, mode="necessary", max_queries=200, seed=3) for _ in range(2)]
    torch.testing.assert_close(runs[0], runs[1], rtol=0, atol=0)  # seeded: the same answer twice
    result = explainer.last_search[0]
    assert result.stopped_by == "minimal" and result.details["peak_flips"] == 1 and result.queries <= 200
    assert int(runs[0].argmax()) == k and float(runs[0][0, k]) == 1.0
    assert int((runs[0] == 1.0).sum()) == 1  # the tie (the partial with one neighbour) is no flip
    # Re-queried: the bin alone flips the decision, the band around it keeps it.
    spectrum = torch.fft.rfft(x)
    alone = x - torch.fft.irfft(spectrum * one_hot(N_BINS, [k]), n=x.shape[-1])
    band = x - torch.fft.irfft(spectrum * one_hot(N_BINS, list(range(k - 40, k + 40))), n=x.shape[-1])
    assert model(alone).argmax(1).item() == 1 and model(band).argmax(1).item() == 0
    # The descent alone (no peaks) spends the same budget without finding it.
    descent = FreqReX(model, search=BandScreening(peak_batch=0)).attribute(x, mode="necessary", max_queries=200, seed=3)
    assert not bool((descent > 0).any())


def test_the_loud_peak_check_prefers_the_loud_one_of_equally_small_sets():
    # Either tone alone suffices; the quiet one sits first in frequency order. Whatever the search
    # ends on, the loud-peak check finds that the loud tone alone passes, and the set is the loud one.
    x = (0.1 * tone(440) + tone(2500)).unsqueeze(0)
    model = ToneDetector([440, 2500], threshold=0.05)
    explainer = FreqReX(model)
    expl = explainer.explain(x)[0]
    assert explainer.last_search[0].details["loud_peaks"] == [bin_of(2500, SAMPLE_RATE)]
    assert expl.sufficient.size == 1 and expl.sufficient.mask[bin_of(2500, SAMPLE_RATE)]
    assert expl.sufficient.level_db == pytest.approx(0.0, abs=1e-6) and expl.sufficient.certified
    assert model(expl.waveform("sufficient").unsqueeze(0)).argmax(1).item() == 1
    assert float(expl.feature_responsibility.sum()) == pytest.approx(1.0)


class _PeakStub:
    """A stub example over 1,600 features with the given ``energy``: the model passes exactly the
    feature sets listed in ``passing``; ``asked`` records each model call's sets (as id lists)."""

    def __init__(self, energy: torch.Tensor, passing: list) -> None:
        self.energy, self.passing, self.asked = energy, passing, []

    def evaluate_masks(self, sets: torch.Tensor) -> SetVerdicts:
        ids = [row.nonzero().squeeze(1).tolist() for row in sets]
        self.asked.append(ids)
        passes = torch.tensor([members in self.passing for members in ids])
        return SetVerdicts(passes, passes.double())

    def context(self, **options) -> SearchContext:
        return SearchContext(lambda steps: torch.zeros(0, dtype=torch.bool), self.evaluate_masks, 1600, True,
                             RefinementOptions(**options), torch.Generator(), torch.device("cpu"), self.energy)


def _five_peaks() -> torch.Tensor:
    energy = torch.zeros(1600, dtype=torch.float64)
    energy[[100, 500, 900, 1300, 1500]] = torch.tensor([9.0, 8.0, 7.0, 6.0, 5.0], dtype=torch.float64)
    return energy


def test_the_loud_peak_check_stops_asking_at_the_first_passing_candidate():
    """The candidates go in order of size, then loudness, a few per model call: where the second
    loudest peak passes alone, the first call (the four loudest peaks alone) settles the check and
    nothing after it is asked; the passing peak leads the ranking and the sets."""
    stub = _PeakStub(_five_peaks(), [[500]])
    context, asked = stub.context(), stub.asked
    found = torch.zeros(1, 1600, dtype=torch.bool)
    found[0, 3] = True  # the search's one-feature set: a quiet bin
    responsibility = torch.zeros(1600, dtype=torch.float64)
    responsibility[3] = 1.0
    checked = loud_peak_check(context, SearchResult(responsibility, 90, "minimal", {}, found))
    assert asked == [[[100], [500], [900], [1300]]]
    assert checked.queries == 94 and checked.details["loud_peaks"] == [500]
    assert bool(checked.sets[0, 500]) and int(checked.sets[0].sum()) == 1
    assert float(checked.responsibility[500]) == float(checked.responsibility.max())


def test_the_peaks_asked_before_the_search_go_four_per_call_until_one_passes():
    """Six peaks within 20 dB of the loudest, a seventh 30 dB below: alone, loudest first, then
    the 2, 3 and 4 loudest together, four per call until one passes; the seventh is never asked."""
    energy = torch.zeros(1600, dtype=torch.float64)
    peaks = [100, 300, 500, 700, 900, 1100, 1300]
    energy[peaks] = torch.tensor([9.0, 8.0, 7.0, 6.0, 5.0, 4.0, 0.009], dtype=torch.float64)
    passing = [[900], [1300], [100, 300, 500]]
    stub = _PeakStub(energy, passing)
    context, asked = stub.context, stub.asked

    found, failed = loud_peaks_first(context(), loudest_peaks(energy, 12))
    assert asked == [[[100], [300], [500], [700]], [[900], [1100], [100, 300], [100, 300, 500]]] and failed == []
    assert found is not None and found.queries == 8 and found.stopped_by == "minimal"
    assert found.responsibility.nonzero().flatten().tolist() == [900] and found.sets[0].nonzero().flatten().tolist() == [900]
    # Without the peak at 900 no single peak passes: the three loudest together do ("small").
    # The model needs 100 and 500 only: one more call asks the set without each member but the
    # last (without 500 it is the two loudest, which failed), and 300, not needed, gets nothing.
    asked.clear()
    passing.append([100, 500])
    found, failed = loud_peaks_first(context(), [100, 300, 500, 700, 1100])
    assert found is not None and found.stopped_by == "small" and found.details["loud_peaks"] == [100, 300, 500]
    assert asked[-1] == [[300, 500], [100, 500]] and found.queries == 10
    assert found.responsibility.nonzero().flatten().tolist() == [100, 500]
    assert found.responsibility[[100, 500]].tolist() == [0.5, 0.5]
    assert found.sets[0].nonzero().flatten().tolist() == [100, 500]
    # None passes: every candidate asked, and the check after the search is told which.
    asked.clear()
    passing.clear()
    found, failed = loud_peaks_first(context(), [100, 300, 500])
    assert found is None and failed == [[100], [300], [500], [100, 300], [100, 300, 500]] and len(asked) == 2
    # The stopping rule off (every search runs), or too little budget for a refinement step after
    # the peaks: nothing is asked.
    asked.clear()
    assert loud_peaks_first(context(convergence_top_k=None), loudest_peaks(energy, 12)) == (None, [])
    assert loud_peaks_first(context(max_queries=23), loudest_peaks(energy, 12)) == (None, [])
    assert asked == []


def test_the_loud_peak_check_does_not_ask_again_the_peaks_seen_failing_alone():
    """Where the three loudest peaks failed alone before the search, and the two loudest together,
    the check after it asks neither again: its first call is the fourth and fifth peaks alone and
    the next two pairs."""
    stub = _PeakStub(_five_peaks(), [[100, 900]])
    context, asked = stub.context(), stub.asked
    found = torch.zeros(1, 1600, dtype=torch.bool)
    found[0, [3, 7]] = True  # the search's two-feature set: quiet bins
    responsibility = found[0].double() / 2
    failed = [[100], [500], [900], [100, 500]]
    checked = loud_peak_check(context, SearchResult(responsibility, 90, "small", {}, found), failed=failed)
    assert asked == [[[1300], [1500], [100, 900], [100, 1300]]]
    assert checked.queries == 94 and checked.details["loud_peaks"] == [100, 900]


def test_loudest_peaks_are_spaced_and_in_loudness_order():
    energy = torch.zeros(1600)
    energy[[100, 101, 102, 700, 1200]] = torch.tensor([5.0, 9.0, 4.0, 7.0, 1.0])
    # 1/800 of 1,600 features is 2: bins 100 and 102 belong to the peak at 101.
    assert loudest_peaks(energy, 3) == [101, 700, 1200]
    assert loudest_peaks(energy, 10) == [101, 700, 1200]  # features without energy are no peaks


def test_shrink_is_on_by_default():
    x, model = harmonic_clip(), HarmonicSum()
    expl = FreqReX(model, search="refinement").explain(x, seed=0)[0]
    report = expl.sufficient.certificate.shrink
    assert report is not None and report.size == expl.sufficient.size <= report.start_size
    plain = FreqReX(model, search="refinement").explain(x, seed=0, shrink=False)[0]
    assert plain.sufficient.certificate.shrink is None and plain.sufficient.size >= expl.sufficient.size


def test_the_queries_reported_are_the_queries_the_model_answered():
    # The scattered case runs three strategies (frequency, the probe, the refinement along the
    # chosen order) and the loud-peak check: every query is counted once, within the budget.
    x, model = harmonic_clip(), HarmonicSum()
    rows = []

    def counted(w):
        rows.append(w.shape[0])
        return model(w)

    expl = FreqReX(counted).explain(x, seed=0, max_queries=600, max_joint_queries=0)[0]
    assert sum(rows) == expl.stats.queries == 2 + expl.responsibility_queries + expl.extraction_queries
    assert expl.responsibility_queries <= 600


def test_band_screening_refuses_a_stop_flag_that_is_not_a_bool():
    with pytest.raises(TypeError, match="stop_at_single must be True or False"):
        BandScreening(stop_at_single="yes")


def test_the_smallest_budget_still_explains(detector, tone_clip):
    # max_queries=15 is the documented floor (one refinement step; the empty set is the baseline
    # alone, which the anchors asked already): one step runs (charged its 15 mutants; its first 5
    # settle it and the rest are not asked), the next does not fit, and the search says it stopped
    # at the budget (not that the causes are scattered: a search cut short says nothing of that).
    # The sets still come from the ranking and are certified.
    expl = FreqReX(detector).explain(tone_clip, max_queries=15)[0]
    assert expl.stopped_by == "max_queries" and expl.responsibility_queries == 5
    assert expl.sufficient.certified and expl.sufficient.mask[bin_of(440, SAMPLE_RATE)]


class BandCoverage(torch.nn.Module):
    """Class 1 when each of ``bands`` equal frequency bands holds a bin of magnitude above ``floor``.

    On an impulse (every bin of magnitude 1) the minimal sufficient sets are one bin per band: a
    little energy across the whole spectrum, which no band of the spectrum separates.
    """

    def __init__(self, bands: int = 8, floor: float = 0.5) -> None:
        super().__init__()
        self.bands, self.floor = bands, floor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        loud = torch.fft.rfft(x).abs() > self.floor
        edges = torch.linspace(0, loud.shape[-1], self.bands + 1).long().tolist()
        covered = torch.stack([loud[:, a:b].any(dim=1) for a, b in zip(edges[:-1], edges[1:])], dim=1)
        margin = 10.0 * (covered.double().mean(dim=1).float() - 1.0 + 0.5 / self.bands)
        return torch.stack([-margin, margin], dim=1)


def test_a_first_search_that_narrows_nothing_stops_at_once():
    # Every sufficient set is most of the spectrum: once the set is barely above the share, no
    # sub-piece can go, a step keeps all four, and the search stops there as scattered instead
    # of cutting for max_depth steps more.
    x, model = impulse(SAMPLE_RATE).unsqueeze(0), SpectrumCoverageDetector()
    explainer = FreqReX(model, search=PartitionRefinement(scattered_above=SCATTERED_MIN))
    explainer.attribute(x, seed=0)
    stalled = explainer.last_search[0]
    assert stalled.stopped_by == "scattered" and stalled.sets is not None and stalled.sets.shape[0] == 1
    assert int(stalled.sets[0].sum()) > 0.75 * N_BINS
    whole = FreqReX(model, search=PartitionRefinement())
    whole.attribute(x, seed=0, n_samples=1)
    assert whole.last_search[0].queries == 24 * 15 > stalled.queries  # max_depth steps of 15


def test_scattered_causes_give_one_bin_a_band_and_a_ranking_whose_prefixes_pass(monkeypatch):
    # No band around the impulse's loud peaks and no tier of its loudest bins holds a bin in all
    # 8 bands; the loudest bin of each of 8 stretches (a loud spread) does, so the cause is found
    # there, before any refinement over the whole spectrum, and the tail orders the rest.
    x, model = impulse(SAMPLE_RATE).unsqueeze(0), BandCoverage()
    explainer = FreqReX(model)
    expl = explainer.explain(x, seed=0)[0]
    details = explainer.last_search[0].details
    assert details["strategy"] == "loud spread" and details["loud_spread"] == 8
    assert "first_set" not in details and details["tail_features"] is not None  # no escalation ran
    sufficient = expl.sufficient
    edges = torch.linspace(0, N_BINS, 9).long().tolist()
    bands = [int(sufficient.mask[a:b].sum()) for a, b in zip(edges[:-1], edges[1:])]
    assert sufficient.certified and bands == [1] * 8  # one bin a band: the minimal sets
    assert model(expl.waveform("sufficient").unsqueeze(0)).argmax(1).item() == 1
    # The features the searches credit rank first; the tail, ordered by the interleaved search's
    # nested passing sets, keeps the decision from an eighth of the spectrum on, where the
    # loudest-first order (all bins equally loud: frequency order) needs all of it.
    values = expl.feature_responsibility
    credited = values >= values.max() * 1e-2
    assert float(values[~credited].max()) <= TAIL_SCALE * float(values[credited].min()) * (1 + 1e-6)
    ranked = insertion_curve(model, x, values.unsqueeze(0), target=1, n_steps=8)
    by_energy = insertion_curve(model, x, torch.ones(1, N_BINS), target=1, n_steps=8)
    assert bool(ranked.passes[0, 1:].all()) and not bool(by_energy.passes[0, 1:6].any())
    again = FreqReX(model).explain(x, seed=0)[0]
    assert torch.equal(again.feature_responsibility, values)  # seeded
    # Without the spreads asked first, the refinement over the whole spectrum ends scattered and
    # escalates: the same one bin a band, for more queries.
    monkeypatch.setattr(auto, "_loud_spreads", lambda energy: torch.zeros(0, energy.numel(), dtype=torch.bool))
    escalated = FreqReX(model)
    late = escalated.explain(x, seed=0)[0]
    assert escalated.last_search[0].details["strategy"].startswith("probed")
    assert late.sufficient.size == sufficient.size and late.responsibility_queries > expl.responsibility_queries


class QuietOrChord(torch.nn.Module):
    """Class 1 when a normalising front end sees the quiet tone at full scale, or the chord is there.

    A normalising model takes a near-empty bin alone for the clip (the quiet 20 Hz tone, kept
    alone, is its own loudest bin); the chord (1500, 2500 and 3500 Hz, each above 0.5) is the
    cause at the clip's energy. Other loud tones are ignored.
    """

    CHORD = (1500, 2500, 3500)
    QUIET = 20

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        spectrum = torch.fft.rfft(x).abs() / (x.shape[-1] / 2)
        normalised = spectrum[:, bin_of(self.QUIET, x.shape[-1])] / spectrum.amax(dim=1).clamp(min=1e-9)
        chord = spectrum[:, [bin_of(f, x.shape[-1]) for f in self.CHORD]].min(dim=1).values
        margin = 10.0 * torch.maximum(normalised - 0.5, chord - 0.5)
        return torch.stack([-margin, margin], dim=1)


def test_a_quiet_smallest_set_gives_way_to_the_cause_at_the_clips_energy():
    # Four ignored tones louder than the chord: no set of the loudest peaks passes (the chord is
    # the 5th to 7th peak); the refinement over the whole spectrum ends on the quiet bin, while the
    # loud bands (those around the 8 loudest peaks hold the chord, not the quiet tone), asked
    # before it, find the chord.
    others = [(1800, 1.2), (2200, 1.2), (2900, 1.2), (3200, 1.2), (600, 0.8)]
    x = (0.01 * tone(QuietOrChord.QUIET) + sum(tone(f) for f in QuietOrChord.CHORD)
         + sum(a * tone(f) for f, a in others)).unsqueeze(0)
    model = QuietOrChord()
    chord = one_hot(N_BINS, [bin_of(f, SAMPLE_RATE) for f in QuietOrChord.CHORD])
    # The refinement's sufficient set is the quiet bin; the explanation returns the chord, its
    # searched sufficient-and-necessary set, in its place, and keeps the quiet bin beside it.
    refined = FreqReX(model, search="refinement").explain(x, seed=2)[0]
    quiet = refined.quiet_sufficient
    assert quiet.size == 1 and quiet.mask[bin_of(QuietOrChord.QUIET, SAMPLE_RATE)] and quiet.level_db < -20
    assert torch.equal(refined.sufficient.mask, chord) and torch.equal(refined.sufficient_necessary.mask, chord)
    explainer = FreqReX(model)
    expl = explainer.explain(x, seed=2)[0]
    assert explainer.last_search[0].details["loud_band"] == 3
    assert explainer.last_search[0].details["strategy"] == "loud band"
    assert expl.quiet_sufficient is None  # the search's own set is the chord
    sufficient = expl.sufficient
    assert sufficient.certified and torch.equal(sufficient.mask, chord) and not sufficient.flags
    assert model(expl.waveform("sufficient").unsqueeze(0)).argmax(1).item() == 1
    again = FreqReX(model).explain(x, seed=2)[0]
    assert torch.equal(again.responsibility, expl.responsibility)  # seeded
    # A set at the clip's level is never checked: the tone detector's answer is its loudest bin.
    loud = FreqReX(ToneDetector([440], threshold=0.5))
    loud.explain(tone(440).unsqueeze(0))
    assert "loud_band" not in loud.last_search[0].details


def test_a_baseline_that_keeps_the_decision_is_not_asked_twice(tone_clip):
    """A detector that says class 1 whatever it hears: the baseline alone keeps the decision, which
    the anchors' query already says, so the default search asks nothing (it used to ask the empty
    set again), credits nothing, and the warning says why."""
    always = ToneDetector([440], threshold=-1.0)
    expl = FreqReX(always).explain(tone_clip)[0]
    assert expl.stopped_by == "empty set passes" and expl.responsibility_queries == 0
    assert not bool(expl.feature_responsibility.any())
    assert expl.sufficient.size == 0 and expl.sufficient.certified
    assert any("the empty set is sufficient" in w for w in expl.warnings)
    assert always.rows == expl.stats.queries  # every query counted, none hidden


def test_a_quiet_cause_inside_the_loud_bands_is_still_refined_and_checked_again():
    # The detector hears only 3 kHz, 30 dB below the 440 Hz tone: the bands around the two loudest
    # peaks pass, but the refinement inside them ends on the quiet tone, which is no answer at the
    # clip's level; the refinement over the whole spectrum runs, and the loud-band check after it
    # gets its second chance (and finds nothing louder: details["loud_band"] is None, checked).
    x = tone(440).unsqueeze(0) + 0.03 * tone(3000).unsqueeze(0)
    explainer = FreqReX(ToneDetector([3000], threshold=0.02))
    expl = explainer.explain(x, seed=0)[0]
    details = explainer.last_search[0].details
    assert details["strategy"] == "frequency" and "loud_band" in details and details["loud_band"] is None
    sufficient = expl.sufficient
    assert sufficient.mask.nonzero().flatten().tolist() == [bin_of(3000, SAMPLE_RATE)]
    assert sufficient.certified and [f["flag"] for f in sufficient.flags] == ["below_clip_level"]


@pytest.mark.parametrize(
    "spacing_hz, asked_kinds",
    [(6, ["band", "tier", "spread"]), (4, ["band", "tier", "spread", "spread"])],
    ids=["every-region-fails", "spreads-pass-quietly"],
)
def test_a_loud_region_kind_that_failed_before_the_refinement_is_not_asked_again_after_it(
    monkeypatch, spacing_hz, asked_kinds
):
    # 600 louder tones the detector ignores take every one of the 64 loudest peaks and the 500
    # loudest bins (an eighth of the spectrum), so no band set around them and no loud tier
    # passes. Spread 6 Hz apart (up to 3,694 Hz) they are also the loudest bin of every stretch,
    # so no loud spread passes either, and the loud-band check after the refinement asks nothing
    # again. Spread 4 Hz apart (up to 2,496 Hz), the quiet 3.7 kHz tone is the loudest bin of its
    # stretch: the spreads pass, but the refinement inside them finds the tone alone, 40 dB below
    # the clip's loudest bin, so after the refinement over the whole spectrum ends on the same
    # quiet tone the check tries the spreads again (its second chance), not the bands and tiers.
    # Either way "loud_band" is None: checked, nothing louder found.
    asked = []
    region_masks = auto._region_masks
    monkeypatch.setattr(auto, "_region_masks", lambda context, peaks, kind: asked.append(kind) or region_masks(context, peaks, kind))
    ignored = sum(tone(100 + spacing_hz * k) for k in range(600))
    x = (ignored + 0.01 * tone(3700)).unsqueeze(0)
    explainer = FreqReX(ToneDetector([3700], threshold=0.005))
    expl = explainer.explain(x, seed=0)[0]
    details = explainer.last_search[0].details
    assert asked == asked_kinds
    assert details["strategy"] == "frequency" and details["loud_band"] is None and "loud_spread" not in details
    assert expl.sufficient.mask.nonzero().flatten().tolist() == [bin_of(3700, SAMPLE_RATE)]
    assert [f["flag"] for f in expl.sufficient.flags] == ["below_clip_level"]


class _CoverageStub(_PeakStub):
    """A stub example over 1,600 features whose model passes a set holding a feature in each of
    the 8 stretches of 200 features (a model that needs a little energy across the spectrum)."""

    def evaluate_masks(self, sets: torch.Tensor) -> SetVerdicts:
        self.asked.append([row.nonzero().squeeze(1).tolist() for row in sets])
        passes = sets.reshape(sets.shape[0], 8, 200).any(dim=2).all(dim=1)
        return SetVerdicts(passes, passes.double())


def test_a_cause_spread_across_the_spectrum_is_found_at_the_clips_level_by_the_loud_spreads():
    """The loudest 100 features crowd the first stretch; the rest are 60 dB quieter. The search's
    set (one quiet feature per stretch) is flagged; the bands around the loud peaks and the loud
    tiers never reach the other stretches and fail, the loudest feature of each of 8 stretches
    passes, and the refinement inside it keeps all 8: they lead, at the clip's level."""
    energy = torch.full((1600,), 1e-6, dtype=torch.float64)
    energy[:100] = torch.linspace(1.0, 0.5, 100, dtype=torch.float64)
    stub = _CoverageStub(energy, [])
    context = stub.context()
    quiet = [150 + 200 * k for k in range(8)]
    found = torch.zeros(1, 1600, dtype=torch.bool)
    found[0, quiet] = True
    responsibility = torch.zeros(1600, dtype=torch.float64)
    responsibility[quiet] = 1 / 8
    assert auto.level_db(energy, found[0]) < -20
    checked = auto.loud_band_check(context, SearchResult(responsibility, 90, "converged", {}, found))
    spread = [0] + [200 * k for k in range(1, 8)]  # the loudest of each stretch (the first of equals)
    assert checked.details["loud_spread"] == 8 and checked.details["loud_band"] == 8
    assert checked.sets[0].nonzero().flatten().tolist() == spread and auto.level_db(energy, checked.sets[0]) == 0.0
    assert bool((checked.responsibility[spread] == checked.responsibility.max()).all())
    # Bands (one batch), tiers (one batch), then the spreads: 8, 16, ... 256 stretches.
    assert [len(call) for call in stub.asked[:3]] == [7, 5, 6]
