"""Responsibility searches as objects, scattered causes, certified shrinking, flip-finding searches.

Known answers by construction (tests/known_models.py): a model that sums the energy of 12
harmonics of a tone while the partials interleaved between them are ignored; tone detectors and
classifiers whose decisive bins are known. Every certificate is re-queried here by the test.
"""

from __future__ import annotations

import pytest
import torch
from known_models import SAMPLE_RATE, ToneClassifier, ToneDetector, bin_of, tone
from torch import Tensor, nn

from captum_freqrex import FreqReX, metrics
from captum_freqrex._core.search.adaptive import AdaptiveRefinement
from captum_freqrex._core.search.band_screening import BandScreening
from captum_freqrex._core.search.partition import PartitionRefinement
from captum_freqrex._core.search.base import SearchContext, SearchResult

SECONDS = 0.5
T = int(SECONDS * SAMPLE_RATE)
F0 = 200
HARMONICS = [bin_of(k * F0, T, SAMPLE_RATE) for k in range(1, 13)]
PARTIALS = [bin_of((k + 0.5) * F0, T, SAMPLE_RATE) for k in range(1, 13)]
BIN_440, BIN_1000, BIN_1500 = bin_of(440, T), bin_of(1000, T), bin_of(1500, T)


class HarmonicSum(nn.Module):
    """Class 1 when the summed magnitude of the 12 harmonics of 200 Hz exceeds 11.5: every harmonic
    (amplitude 1) is needed, the partials between them and everything else are ignored."""

    def forward(self, x: Tensor) -> Tensor:
        spectrum = torch.fft.rfft(x).abs() / (x.shape[-1] / 2)
        margin = 10.0 * (spectrum[:, HARMONICS].sum(1) - 11.5)
        return torch.stack([-margin, margin], dim=1)


def harmonic_clip() -> Tensor:
    """12 harmonics of 200 Hz, 12 equally loud partials at (k + 1/2) * 200 Hz, faint noise."""
    g = torch.Generator().manual_seed(0)
    waves = [tone(k * F0, SECONDS) + tone((k + 0.5) * F0, SECONDS) for k in range(1, 13)]
    return (sum(waves) + 0.01 * torch.randn(T, generator=g)).unsqueeze(0)


def clip(*tones: tuple) -> Tensor:
    return sum(tone(hz, SECONDS, amp) for hz, amp in tones).unsqueeze(0)


def one_hot(n: int, ids) -> Tensor:
    mask = torch.zeros(n, dtype=torch.bool)
    mask[list(ids)] = True
    return mask


# ------------------------------------------------------------------ the protocol


class SingleBin:
    """A toy search: checks one bin with one query and gives it all the responsibility."""

    def __init__(self, feature: int) -> None:
        self.feature = feature
        self.contexts = []

    def run(self, context: SearchContext) -> SearchResult:
        self.contexts.append(context)
        verdicts = context.evaluate_sets(one_hot(context.n_features, [self.feature]).float().unsqueeze(0))
        values = torch.zeros(context.n_features, dtype=torch.float64)
        values[self.feature] = 1.0 if bool(verdicts.passes[0]) else 0.5
        return SearchResult(values, context.queries, "searches", {"passed": bool(verdicts.passes[0])})


def test_a_search_object_passed_to_freqrex_is_the_search_used(detector, tone_clip):
    toy = SingleBin(bin_of(1000, SAMPLE_RATE))  # a distractor: the toy search decides the ranking
    explainer = FreqReX(detector, search=toy)
    expl = explainer.explain(tone_clip, max_queries=200)[0]
    (context,) = toy.contexts
    assert context.n_features == SAMPLE_RATE // 2 + 1 and context.mode == "sufficient" and context.root_passes
    assert context.energy.shape == (context.n_features,) and context.options.max_queries == 200
    assert int(expl.ranking[0]) == toy.feature and expl.feature_responsibility[toy.feature] == 0.5
    assert expl.responsibility_queries == 1 and expl.stopped_by == "searches"
    assert explainer.last_search[0].details == {"passed": False}  # 1 kHz alone is not the decision
    assert expl.stats.queries == 2 + expl.responsibility_queries + expl.extraction_queries
    # The sets still come from the ranking and are certified: the 440 Hz bin is needed.
    assert expl.sufficient.mask[bin_of(440, SAMPLE_RATE)] and expl.sufficient.certified


def test_bad_searches_raise_clear_errors(detector, tone_clip):
    with pytest.raises(ValueError, match="search must be a search object or one of"):
        FreqReX(detector, search="greedy")
    with pytest.raises(TypeError, match=r"run\(context\) -> SearchResult"):
        FreqReX(detector, search=object())
    with pytest.raises(ValueError, match="order must be one of 'frequency', 'interleaved', 'energy'"):
        PartitionRefinement(order="spiral")

    class Short:
        def run(self, context):
            return SearchResult(torch.ones(3), 0, "searches")

    with pytest.raises(ValueError, match="finite non-negative values"):
        FreqReX(detector, search=Short()).attribute(tone_clip)
    with pytest.raises(ValueError, match="permutation of the 4001 feature ids"):
        FreqReX(detector, search=PartitionRefinement(order=torch.zeros(4001))).attribute(tone_clip)


@pytest.mark.parametrize("case", ["tone", "harmonics", "necessary"])
def test_a_step_settled_by_one_sub_piece_asks_five_mutants_and_refines_as_if_it_asked_all(case, monkeypatch):
    """Where the rest of S fails and a sub-piece passes with it, the next S keeps one sub-piece
    whatever the larger subsets say: the refinement asks them only for the steps left open, and
    its responsibility is the one it gets when every step asks all 15 mutants."""
    from captum_freqrex._core.search import partition

    if case == "tone":
        model, x, mode = ToneDetector([440], 0.5), clip((440, 1.0), (1000, 0.5), (1500, 0.3)), "sufficient"
    elif case == "harmonics":
        model, x, mode = HarmonicSum(), harmonic_clip(), "sufficient"
    else:
        model, x, mode = ToneDetector([440, 1000], 1.5), clip((440, 1.0), (1000, 1.0)), "necessary"

    def run():
        explainer = FreqReX(model, search="refinement")
        values = explainer.attribute(x, mode=mode, max_queries=5000, seed=0)
        return values, explainer.last_search[0]

    lazy, lazy_result = run()
    monkeypatch.setattr(partition, "_settled_by_one", lambda table: False)  # every step asks all 15
    full, full_result = run()
    assert torch.equal(lazy, full) and lazy_result.stopped_by == full_result.stopped_by
    assert lazy.max() > 0 and lazy_result.queries < full_result.queries


# ------------------------------------------------------------------ scattered causes


def test_scattered_harmonics_are_found_along_another_order():
    """Refinement over bands cannot cut the 12 harmonics apart from the partials between them;
    the adaptive search sees at the root that a loudness tier suffices where bands do not."""
    x, model = harmonic_clip(), HarmonicSum()
    contiguous = FreqReX(model, search="refinement").explain(x, seed=0, shrink=False)[0]
    assert contiguous.sufficient.certified and contiguous.sufficient.size > 100
    explainer = FreqReX(model, search="adaptive")
    expl = explainer.explain(x, seed=0)[0]
    details = explainer.last_search[0].details
    assert details["order"] == "energy" and details["probe"]["energy"] < details["probe"]["frequency"]
    assert expl.responsibility_queries <= 1000 and details["probe_queries"] == 42
    sufficient = expl.sufficient
    assert sufficient.certified and torch.equal(sufficient.mask, one_hot(x.shape[-1] // 2 + 1, HARMONICS))
    assert not sufficient.mask[PARTIALS].any()
    assert model(expl.waveform("sufficient").unsqueeze(0)).argmax(1).item() == 1


@pytest.mark.parametrize("search", ["interleaved", "energy", "adaptive"])
@pytest.mark.parametrize("causes, require_all", [([BIN_440, BIN_1500], False), ([BIN_440, BIN_1500], True)])
def test_other_orders_give_ignored_frequencies_exactly_zero(search, causes, require_all):
    x = clip((440, 1.0), (1000, 1.0), (1500, 1.0), (2500, 1.0))
    model = ToneDetector([b * SAMPLE_RATE / T for b in causes], threshold=0.3, require_all=require_all)
    for seed in (0, 1):
        resp = FreqReX(model, search=search).attribute(x, max_queries=None, seed=seed)[0]
        ignored = ~one_hot(resp.numel(), causes)
        assert torch.all(resp[ignored] == 0) and abs(float(resp[causes].sum()) - 1.0) < 1e-9


def test_new_searches_are_seeded_and_batch_invariant():
    x = torch.cat([harmonic_clip(), 1.1 * harmonic_clip()])  # the louder one needs 11 of the 12
    explainer = FreqReX(HarmonicSum(), search=AdaptiveRefinement())
    together = explainer.explain(x, seed=5, max_queries=400, shrink=True)
    alone = [explainer.explain(x[i : i + 1], seed=5, max_queries=400, shrink=True)[0] for i in range(2)]
    again = explainer.explain(x, seed=5, max_queries=400, shrink=True)
    for a, b, c in zip(together, alone, again):
        torch.testing.assert_close(a.feature_responsibility, b.feature_responsibility, rtol=0, atol=0)
        torch.testing.assert_close(a.feature_responsibility, c.feature_responsibility, rtol=0, atol=0)
        assert torch.equal(a.sufficient.mask, b.sufficient.mask) and torch.equal(a.sufficient.mask, c.sufficient.mask)


# ------------------------------------------------------------------ certified shrinking


def ranking_scores(n: int, order) -> Tensor:
    """Attributions ``(1, n)`` whose ranking starts with ``order`` (then the rest, by energy)."""
    scores = torch.zeros(1, n)
    for position, feature in enumerate(order):
        scores[0, feature] = float(len(order) - position)
    return scores


def single_removals_fail(model, x, mask: Tensor, target: int) -> bool:
    """The test's own 1-minimality check: every single removal from the set loses the decision."""
    rows = []
    for feature in mask.nonzero().squeeze(1).tolist():
        smaller = mask.clone()
        smaller[feature] = False
        rows.append(smaller)
    kept = metrics.sufficiency(model, x.repeat(len(rows), 1), torch.stack(rows), target=target)
    return not bool(kept.sufficient.any())


@pytest.mark.parametrize(
    "name, model, order, expected",
    [
        # all of two: the prefix holds two ignored bins besides the two causes
        ("all of two", ToneDetector([440, 1500], 0.3, require_all=True), [5, BIN_440, 9, BIN_1500], [BIN_440, BIN_1500]),
        # any of two: the prefix needs the first cause only, behind two ignored bins
        ("any of two", ToneDetector([440, 1500], 0.3), [5, 7, BIN_1500, BIN_440], [BIN_1500]),
    ],
)
def test_shrink_gives_a_one_minimal_certified_set(name, model, order, expected):
    x = clip((440, 1.0), (1000, 1.0), (1500, 1.0)) + 0.01 * torch.randn(1, T, generator=torch.Generator().manual_seed(0))
    n = T // 2 + 1
    scores = ranking_scores(n, order)
    # The three sets as prefixes (no joint search, which starts from the shrunk set): the shrink's
    # own queries are then the whole difference.
    plain = FreqReX(model).explain(x, attributions=scores, shrink=False, max_joint_queries=0)[0]
    assert plain.sufficient.certified and plain.sufficient.size > len(expected), name  # minimal along the ranking only
    expl = FreqReX(model).explain(x, attributions=scores, shrink=True, max_joint_queries=0)[0]
    sufficient, report = expl.sufficient, expl.sufficient.certificate.shrink
    assert torch.equal(sufficient.mask, one_hot(n, expected)), name
    assert sufficient.certified and report.one_minimal is True and report.exhaustive
    assert report.prefix_size == plain.sufficient.size and report.size == len(expected) == sufficient.size
    # Re-query: the set alone keeps the decision, and no single feature of it can go.
    assert model(expl.waveform("sufficient").unsqueeze(0)).argmax(1).item() == 1
    assert single_removals_fail(model, x, sufficient.mask, target=1)
    assert expl.stats.queries == 2 + expl.extraction_queries
    assert expl.extraction_queries == plain.extraction_queries + report.queries + 1  # one more set certified


def test_shrink_of_a_large_set_is_batched_and_within_budget():
    """300 ignored bins ranked above the decisive one: the shrink drops chunks per model call, the
    chunks whose removals passed together where that passes too, and ends on the decisive bin
    alone, proven 1-minimal, within its 64 queries (dropping one chunk a round, it ended on 19
    bins, unproven). The decisive tone is 26 dB below the clip's loudest, so the shrink pins no
    loud member."""
    detector = ToneDetector([440], threshold=0.025)
    x = clip((440, 0.05), (1000, 1.0)) + 0.05 * torch.randn(1, T, generator=torch.Generator().manual_seed(1))
    n = T // 2 + 1
    ignored = [b for b in range(10, 1000, 3) if b != BIN_440][:300]
    scores = ranking_scores(n, ignored + [BIN_440])
    rows = []

    def model(w):
        rows.append(w.shape[0])
        return detector(w)

    plain = FreqReX(model).explain(x, attributions=scores, shrink=False)[0]
    calls_plain = len(rows)
    rows.clear()
    expl = FreqReX(model).explain(x, attributions=scores, shrink=True, max_shrink_queries=64)[0]
    report = expl.sufficient.certificate.shrink
    assert plain.sufficient.size == 301 and report.prefix_size == 301
    assert expl.sufficient.certified and expl.sufficient.mask[BIN_440]
    assert report.size == expl.sufficient.size == 1 and report.queries <= 64
    assert report.one_minimal is True and report.checked == report.size
    shrink_calls = len(rows) - calls_plain
    assert report.queries >= 4 * shrink_calls  # many candidate sets per model call
    assert metrics.sufficiency(detector, x, expl.sufficient.mask.unsqueeze(0), target=1).sufficient.all()


def test_shrink_starts_from_a_smaller_set_the_search_saw_pass():
    """The harmonic model, refined over bands: the prefix is hundreds of bins; the shrink starts
    from the smallest passing set a search ended with when that is smaller."""
    x, model = harmonic_clip(), HarmonicSum()
    explainer = FreqReX(model, search="refinement")
    expl = explainer.explain(x, seed=0, shrink=True)[0]
    report = expl.sufficient.certificate.shrink
    found = explainer.last_search[0].sets
    assert found is not None and bool(found[0][HARMONICS].all())
    assert report.start_size == min(int(found[0].sum()), report.prefix_size)
    assert report.size < report.start_size and expl.sufficient.certified
    assert expl.sufficient.mask[HARMONICS].all()  # every harmonic is needed


def test_shrink_changes_nothing_on_a_one_bin_set(detector, tone_clip):
    plain = FreqReX(detector).explain(tone_clip, seed=0, shrink=False)[0]
    assert plain.sufficient.certificate.shrink is None
    shrunk = FreqReX(detector).explain(tone_clip, seed=0)[0]  # shrink is on by default
    assert shrunk.sufficient.size == plain.sufficient.size == 1  # one bin: nothing to drop
    with pytest.raises(ValueError, match="max_shrink_queries"):
        FreqReX(detector).explain(tone_clip, shrink=True, max_shrink_queries=-1)


# ------------------------------------------------------------------ flips at few queries


def test_band_screening_finds_the_single_frequency_whose_removal_flips_the_decision():
    model = ToneClassifier([440, 1000, 2500]).eval()
    g = torch.Generator().manual_seed(0)
    x = (0.5 * tone(1000) + 0.45 * tone(440) + 0.01 * torch.randn(SAMPLE_RATE, generator=g)).unsqueeze(0)
    explainer = FreqReX(model, search=BandScreening())
    resp = explainer.attribute(x, mode="necessary", max_queries=120)
    details = explainer.last_search[0].details
    flip_bin = bin_of(1000, SAMPLE_RATE)
    assert int(resp[0].argmax()) == flip_bin and resp[0, flip_bin] == 1.0
    assert explainer.last_stats.queries <= 2 + 120 and details["single_feature_flips"] >= 1
    assert details["union_flips"] == []  # a single flip: no unions asked
    fooled = metrics.perturbation_success_rate(model, x, resp, k=1)
    assert bool(fooled.flipped[0]) and int(fooled.decided[0]) == 0  # 1 kHz gone: 440 Hz wins
    # Frequencies in no removal that flipped the decision get exactly zero.
    far = torch.ones(resp.shape[1], dtype=torch.bool)
    far[flip_bin - 300 : flip_bin + 300] = False
    assert torch.all(resp[0, far] == 0)


class _LowBandCue(nn.Module):
    """Class 0 while a 6 Hz cue outweighs half a 40 Hz tone; a 2 kHz tone adds a decoy.

    Logit 0 is ``e6 - 0.5 e40 - 0.1 + 0.55 e2000`` (energies of unit sines are 1; logit 1 is 0):
    removing the 6 Hz bin alone flips the decision (-0.05), removing the whole low end (6 and
    40 Hz together) does not (0.45), and removing the 2 kHz tone moves the target furthest
    without flipping it (0.4), so a search led by graded scores chases the decoy first.
    """

    def __init__(self) -> None:
        super().__init__()
        self.tones = ToneDetector([6, 40, 2000], 0.0)

    def forward(self, x: Tensor) -> Tensor:
        e6, e40, e2000 = self.tones.energies(x).pow(2).unbind(1)
        logit = e6 - 0.5 * e40 - 0.1 + 0.55 * e2000
        return torch.stack([logit, torch.zeros_like(logit)], dim=1)


def test_band_screening_screens_narrow_low_bands_at_its_first_level():
    x = (tone(6) + tone(40) + tone(2000)).unsqueeze(0)
    model = _LowBandCue()
    cue = bin_of(6, x.shape[-1])
    assert int(model(x).argmax(1)) == 0
    # The default first level holds a log-width band of at most 2 bins around 6 Hz: it flips the
    # decision when removed and is resolved bin by bin right after the first level.
    explainer = FreqReX(model, search=BandScreening())
    resp = explainer.attribute(x, target=0, mode="necessary", max_queries=76)
    assert int(resp[0].argmax()) == cue and resp[0, cue] == 1.0
    assert bool(metrics.perturbation_success_rate(model, x, resp, target=0, k=1).flipped[0])
    # Equal-width bands alone (83 bins each) lump the cue with the 40 Hz tone, whose removal
    # with it keeps the decision; the descent follows the decoy first and, within the same
    # budget, gets no further than a 10-bin sub-band holding the cue. (No unions
    # or wide parts: the queries they keep back would leave the last opening unpaid and hand the
    # rest to the peaks.)
    equal_only = FreqReX(model, search=BandScreening(log_bands=0, union_sizes=(), wide_splits=()))
    resp_equal = equal_only.attribute(x, target=0, mode="necessary", max_queries=76)
    assert resp_equal.max() < 1.0 and equal_only.last_search[0].stopped_by == "max_queries"
    # Given the queries it needs, it gets there too.
    resp_equal = equal_only.attribute(x, target=0, mode="necessary", max_queries=200)
    assert int(resp_equal[0].argmax()) == cue and resp_equal[0, cue] == 1.0


PEAKS_HZ = (1005, 1020, 1035, 1050, 1065)  # 15 Hz apart inside the equal-width band [1000, 1084) Hz


class _PeaksOverFloor(nn.Module):
    """Class 1 once the peaks of a band are gone while its floor stays: a cause no contiguous band holds.

    The 1 s clip holds five unit sines (``PEAKS_HZ``) over a floor of weak sines at every other bin
    of [1000, 1084) Hz (energy 0.79). Logit 1 is ``(floor > 0.5) * (1.6 - peaks)`` against 0.5:
    removing four or five peaks flips the decision, fewer do not, and so does no contiguous
    removal (one holding four peaks holds 42 floor bins, leaving a floor of 0.37).
    """

    def __init__(self) -> None:
        super().__init__()
        self.peaks = ToneDetector(PEAKS_HZ, 0.0)
        self.floor = ToneDetector([f for f in range(1000, 1084) if f not in PEAKS_HZ], 0.0)

    def forward(self, x: Tensor) -> Tensor:
        floor, peaks = (d.energies(x).pow(2).sum(1) for d in (self.floor, self.peaks))
        logit = (floor > 0.5).float() * (1.6 - peaks)
        return torch.stack([torch.full_like(logit, 0.5), logit], dim=1)


def test_band_screening_screens_the_loudest_features_of_a_band_it_opens():
    floor_hz = [f for f in range(1000, 1084) if f not in PEAKS_HZ]
    x = (sum(tone(f) for f in PEAKS_HZ) + sum(tone(f, amplitude=0.1) for f in floor_hz)).unsqueeze(0)
    model = _PeaksOverFloor()
    assert int(model(x).argmax(1)) == 0
    peaks = [bin_of(f, x.shape[-1]) for f in PEAKS_HZ]
    explainer = FreqReX(model, search=BandScreening())
    # Silence keeps the decision (the floor goes too), and the warning says the search found more.
    with pytest.warns(UserWarning, match="found removals of some frequencies that change it"):
        resp = explainer.attribute(x, target=0, mode="necessary", max_queries=150)
    details = explainer.last_search[0].details
    # The opened band's five loudest bins flip the decision together; none alone does. At the
    # end, the union of the four peaks whose removals moved the target most flips it too: four
    # of the five are a minimal flipping set (responsibility 1/4), the fifth is in the core (1/5).
    assert details["core_flips"] >= 1 and details["single_feature_flips"] == 0
    assert details["union_flips"] == [4, 5]
    assert sorted(resp[0, peaks].tolist()) == pytest.approx([0.2, 0.25, 0.25, 0.25, 0.25])
    assert int((resp[0] > 0).sum()) == 5
    assert bool(metrics.perturbation_success_rate(model, x, resp, target=0, k=4).flipped[0])
    assert bool(metrics.perturbation_success_rate(model, x, resp, target=0, k=5).flipped[0])
    # Without cores the unions still find the peaks, the floor bins (which move nothing alone)
    # in none of them.
    no_cores = FreqReX(model, search=BandScreening(core_size=0))
    with pytest.warns(UserWarning, match="found removals of some frequencies that change it"):
        resp_unions = no_cores.attribute(x, target=0, mode="necessary", max_queries=150)
    assert no_cores.last_search[0].details["union_flips"] == [4, 5]
    assert int((resp_unions[0] > 0).sum()) == 5 and torch.all(resp_unions[0, peaks] >= 0.2)
    # Contiguous bands alone never reach it: every responsibility is 0, and the search says so.
    bands_only = FreqReX(model, search=BandScreening(core_size=0, union_sizes=()))
    with pytest.warns(UserWarning, match="no removal"):
        resp_bands = bands_only.attribute(x, target=0, mode="necessary", max_queries=150)
    assert torch.all(resp_bands == 0)


def test_band_screening_finds_scattered_frequencies_that_flip_the_decision_only_together():
    # Class 1 while the magnitudes at 440 Hz and 1 kHz sum above 0.5: removing either tone alone
    # (or any band holding one) keeps the decision, removing both flips it.
    model = ToneDetector([440, 1000], 0.5)
    x = (tone(440) + tone(1000)).unsqueeze(0)
    causes = [bin_of(440, SAMPLE_RATE), bin_of(1000, SAMPLE_RATE)]
    explainer = FreqReX(model)  # the default necessary search
    resp = explainer.attribute(x, mode="necessary", max_queries=150)[0]
    result = explainer.last_search[0]
    assert result.details["single_feature_flips"] == 0 and result.details["union_flips"] == [2]
    assert result.stopped_by == "max_queries" and explainer.last_stats.queries <= 2 + 150
    # Each tone is in a minimal flipping pair (responsibility 1/2); every ignored bin gets exactly 0.
    assert resp[causes].tolist() == [0.5, 0.5] and int((resp > 0).sum()) == 2
    fooled = metrics.perturbation_success_rate(model, x, resp.unsqueeze(0), k=[1, 2])
    assert fooled.flipped[0].tolist() == [False, True]
    # The tree alone (bands, cores, single bins) finds no removal that flips it.
    tree_only = FreqReX(model, search=BandScreening(union_sizes=(), wide_splits=()))
    assert torch.all(tree_only.attribute(x, mode="necessary", max_queries=150) == 0)
    assert tree_only.last_search[0].details["union_flips"] == []
    # Without the unions, the wide parts end it: the low half holds both tones (no eighth or
    # quarter does) and is the answer, 1 / its size each.
    halves = FreqReX(model, search=BandScreening(union_sizes=()))
    resp_half = halves.attribute(x, mode="necessary", max_queries=150)[0]
    width = halves.last_search[0].details["wide_flip"]
    assert width == resp_half.numel() // 2 and bool((resp_half[causes] == 1 / width).all())
    assert int((resp_half > 0).sum()) == width and int((resp_half > 0).nonzero()[0]) == 0


def test_band_screening_asks_no_unions_after_a_single_flip_and_refuses_bad_sizes():
    model = ToneDetector([440, 1000], 1.5)  # either tone's removal flips it
    x = (tone(440) + tone(1000)).unsqueeze(0)
    runs = [FreqReX(model, search=BandScreening(union_sizes=sizes)) for sizes in [(2, 3, 4, 5, 8), ()]]
    resps = [run.attribute(x, mode="necessary", max_queries=150) for run in runs]
    assert torch.equal(resps[0], resps[1]) and runs[0].last_stats.queries == runs[1].last_stats.queries
    assert runs[0].last_search[0].stopped_by == "minimal" and runs[0].last_search[0].details["union_flips"] == []
    with pytest.raises(ValueError, match="union_sizes must be >= 2"):
        BandScreening(union_sizes=(1, 2))
    with pytest.raises(TypeError, match="union_sizes must be a sequence of ints"):
        BandScreening(union_sizes="235")


def test_band_screening_with_nothing_to_flip_finds_nothing():
    model = ToneClassifier([440, 1000, 2500]).eval()
    x = (0.5 * tone(1000)).unsqueeze(0)
    explainer = FreqReX(model, search="band_screening")
    with pytest.warns(UserWarning, match="does not change the decision") as caught:
        resp = explainer.attribute(x, baselines=x, mode="necessary", max_queries=150)
    assert (resp == 0).all()
    # It still screened (a baseline that keeps the decision proves nothing about smaller
    # removals), and the warning says what it tried instead of claiming no removal could work.
    result = explainer.last_search[0]
    assert 64 <= result.queries <= 150 and result.stopped_by == "max_queries"
    (message,) = [str(w.message) for w in caught if "does not change the decision" in str(w.message)]
    assert f"({result.queries} queries, stopped by 'max_queries')" in message and "cannot change" not in message


class _GivenSearch:
    """A 'search' that returns a fixed responsibility and one passing set (for the shrink's start)."""

    def __init__(self, responsibility: Tensor, passing: Tensor) -> None:
        self.responsibility, self.passing = responsibility, passing

    def run(self, context: SearchContext) -> SearchResult:
        return SearchResult(self.responsibility, 0, "given", {}, self.passing.unsqueeze(0))


def test_the_shrink_keeps_a_loud_set_at_the_clips_level():
    """EitherCause fires on a loud 440 Hz tone alone or on a quiet 880 + 1320 Hz pair (-24 dB). The
    shrink starts from a set holding both causes with 440 Hz ranked last: plain deletions drop the
    lowest-ranked chunk first and end on the quiet pair; the shrink keeps the set's loudest member,
    within 20 dB of the clip's loudest bin, and ends on the loud tone alone."""
    from known_models import EitherCause

    model = EitherCause([[440], [880, 1320]], threshold=0.03)
    g = torch.Generator().manual_seed(0)
    x = clip((440, 1.0), (880, 0.06), (1320, 0.06)) + 0.002 * torch.randn(1, T, generator=g)
    n = T // 2 + 1
    quiet = [bin_of(880, T), bin_of(1320, T)]
    noise = [b for b in range(20, 400, 7) if b not in quiet + [BIN_440]][:30]
    responsibility = ranking_scores(n, noise + quiet + [BIN_440])  # the prefix: 30 noise bins + the pair
    passing = torch.zeros(n, dtype=torch.bool)
    passing[noise[:10] + quiet + [BIN_440]] = True  # 13 < 32 features: the shrink starts here
    expl = FreqReX(model, search=_GivenSearch(responsibility, passing)).explain(x, seed=0)[0]
    sufficient = expl.sufficient
    assert sufficient.certificate.shrink.start == "search" and sufficient.certified
    assert sufficient.mask.nonzero().squeeze(1).tolist() == [BIN_440] and sufficient.level_db == 0.0
    assert sufficient.certificate.shrink.one_minimal  # a single feature whose removal leaves the baseline
    assert int(model(expl.waveform("sufficient").unsqueeze(0)).argmax(1)) == 1  # re-queried here


@pytest.mark.parametrize("amplitude, kept", [(0.63, 1), (0.25, 2)])
def test_the_shrink_drops_its_loud_member_where_the_rest_is_about_as_loud(amplitude, kept):
    """EitherCause fires on 880 Hz alone and not on the loudest tone, 440 Hz. The shrink keeps a
    set's loudest member so that the set stays at the clip's level; where the rest, 880 Hz, passes
    without it and is within 6 dB of it (-4 dB), 440 Hz goes as well: one bin, 1-minimal (it
    kept both before). At -12 dB the loud member stays (a set 12 dB quieter is no better answer
    for one bin fewer), and the report says one single removal would still keep the decision."""
    from known_models import EitherCause

    model = EitherCause([[880]], threshold=0.2)
    x = clip((440, 1.0), (880, amplitude), (1320, 0.15))
    n = T // 2 + 1
    bin_880 = bin_of(880, T)
    # 440 Hz ranked first: the sufficient prefix is all three tones, and the shrink starts there.
    responsibility = ranking_scores(n, [BIN_440, bin_of(1320, T), bin_880])
    passing = torch.zeros(n, dtype=torch.bool)
    passing[[bin_of(1320, T), bin_880, BIN_440]] = True
    expl = FreqReX(model, search=_GivenSearch(responsibility, passing)).explain(x, seed=0)[0]
    sufficient = expl.sufficient
    members = sufficient.mask.nonzero().squeeze(1).tolist()
    assert members == ([bin_880] if kept == 1 else [BIN_440, bin_880]) and sufficient.certified
    assert not sufficient.flags
    report = sufficient.certificate.shrink
    assert (report.start, report.start_size, report.size) == ("prefix", 3, kept)
    assert report.one_minimal is (kept == 1)


def test_the_shrink_keeps_its_loud_member_where_the_rest_alone_would_be_flagged_below_the_clip():
    """As above, with a louder tone the model ignores (1000 Hz, the clip's loudest bin): the loud
    member, 440 Hz, sits at -18 dB and 880 Hz, which passes alone, 4 dB below it at -22 dB. The
    rest is within 6 dB of the loud member but more than 20 dB below the clip's level, where a set
    is flagged: the loud member stays, and the set is not flagged."""
    from known_models import EitherCause

    model = EitherCause([[880]], threshold=0.05)
    x = clip((1000, 1.0), (440, 10 ** (-18 / 20)), (880, 10 ** (-22 / 20)), (1320, 0.02))
    n = T // 2 + 1
    bin_880 = bin_of(880, T)
    responsibility = ranking_scores(n, [BIN_440, bin_of(1320, T), bin_880])
    passing = torch.zeros(n, dtype=torch.bool)
    passing[[bin_of(1320, T), bin_880, BIN_440]] = True
    sufficient = FreqReX(model, search=_GivenSearch(responsibility, passing)).explain(x, seed=0)[0].sufficient
    assert sufficient.mask.nonzero().squeeze(1).tolist() == [BIN_440, bin_880] and sufficient.certified
    assert not sufficient.flags and -18.5 < sufficient.level_db < -17.5
    assert sufficient.certificate.shrink.one_minimal is False  # 440 Hz could go, to a flagged set
