"""Each search strategy on its own, against a fake SearchContext: no model, no spectrum, no FreqReX.

The fake answers verdicts from a rule over feature sets whose causes are known by construction,
so a strategy is checked for what it computes from verdicts alone (and for the protocol: budget,
seeded randomness, shape), independently of the mask mechanism and the model caller.
"""

from typing import Callable, Sequence

import pytest
import torch

from captum_freqrex import AdaptiveRefinement, BandScreening, PartitionRefinement
from captum_freqrex._core.search import NAMED_SEARCHES, loud_runs, resolve_search
from captum_freqrex._core.search.band_screening import PATIENCE, UNION_SIZES, _first_level, spectral_peaks
from captum_freqrex._core.search.base import RefinementOptions, SearchContext, SetVerdicts
from captum_freqrex._core.spectral.space import ranges_to_mask
from captum_freqrex._core.spectral.synthesis import StepQuery

N_FEATURES = 64
Rule = Callable[[torch.Tensor], torch.Tensor]  # (N, n) bool sets -> (N,) bool passes


def fake_context(rule: Rule, mode: str = "sufficient", max_queries: int = 1000, seed: int = 0,
                 n_features: int = N_FEATURES, energy=None, stop_early: bool = True) -> SearchContext:
    """A SearchContext whose verdicts come from ``rule`` on the sets themselves."""
    def evaluate_masks(sets: torch.Tensor) -> SetVerdicts:
        sets = sets.bool()
        passes = rule(sets)
        return SetVerdicts(passes, passes.double())  # graded score: 1 for a pass, 0 otherwise

    def evaluate_steps(steps: Sequence[StepQuery]) -> torch.Tensor:
        rows = []
        for step in steps:
            parts = ranges_to_mask(step.parts, n_features, torch.device("cpu")).bool()  # (n_parts, n)
            keeps = (step.combinations.double() @ parts.double()) > 0
            rows.append(keeps)
        sets = torch.cat(rows) if rows else torch.zeros(0, n_features, dtype=torch.bool)
        return rule(sets)

    options = RefinementOptions(max_queries=max_queries, convergence_top_k=10 if stop_early else None)
    options.validate()
    everything = torch.ones(1, n_features, dtype=torch.bool)
    return SearchContext(
        evaluate_steps, evaluate_masks, n_features, bool(rule(everything)[0]), options,
        torch.Generator().manual_seed(seed), torch.device("cpu"),
        torch.ones(n_features, dtype=torch.float64) if energy is None else energy, mode, 64,
    )


def holds_all(*causes: int) -> Rule:
    """Passes when every cause is in the set (a conjunction: each cause is necessary)."""
    ids = torch.tensor(causes)
    return lambda sets: sets[:, ids].all(dim=1)


def holds_any(*causes: int) -> Rule:
    """Passes when any cause is in the set (a disjunction: each cause alone is sufficient)."""
    ids = torch.tensor(causes)
    return lambda sets: sets[:, ids].any(dim=1)


@pytest.mark.parametrize("search", [PartitionRefinement(), PartitionRefinement(order="interleaved"),
                                    PartitionRefinement(order="energy"), AdaptiveRefinement()],
                         ids=["refinement", "interleaved", "energy", "adaptive"])
@pytest.mark.parametrize("rule, causes", [(holds_all(9, 50), {9, 50}), (holds_any(5), {5})],
                         ids=["conjunction", "single"])
def test_refinements_credit_exactly_the_causes(search, rule, causes):
    context = fake_context(rule)
    result = search.run(context)
    credited = set(torch.nonzero(result.responsibility > 0).flatten().tolist())
    assert credited == causes
    # adaptive refines on a copy of the context, so its own count may exceed the probe's
    assert context.queries <= result.queries <= context.options.max_queries
    assert result.responsibility.shape == (N_FEATURES,)


def test_a_disjunction_gives_each_cause_its_share():
    # Either cause alone keeps the decision: neither is a but-for cause of the whole, each is
    # one of two ways to it; both are credited and nothing else is.
    result = PartitionRefinement().run(fake_context(holds_any(10, 41), stop_early=False))
    credited = set(torch.nonzero(result.responsibility > 0).flatten().tolist())
    assert credited == {10, 41}


def test_the_searches_stop_at_the_first_one_feature_set():
    # The same disjunction with the stopping rule: one search ends on one of the two causes, and
    # no smaller set exists, so no further search runs.
    result = PartitionRefinement().run(fake_context(holds_any(10, 41)))
    credited = set(torch.nonzero(result.responsibility > 0).flatten().tolist())
    assert result.stopped_by == "minimal" and result.sets.shape[0] == 1 and credited in ({10}, {41})


def test_the_searches_stop_once_a_search_finds_no_smaller_set():
    # All of five: every search ends on the five; the second finds nothing smaller and stops the run.
    causes = [3, 10, 41, 50, 60]
    result = PartitionRefinement().run(fake_context(lambda sets: sets[:, causes].all(dim=1)))
    assert result.stopped_by == "converged" and result.sets.shape[0] == 2
    assert set(torch.nonzero(result.responsibility > 0).flatten().tolist()) == set(causes)


def test_a_small_set_settles_the_searches():
    # All of two: one search ends on {10, 41}, a set of at most SMALL_SET features.
    result = PartitionRefinement().run(fake_context(lambda sets: sets[:, 10] & sets[:, 41]))
    assert result.stopped_by == "small" and result.sets.shape[0] == 1


def test_band_screening_finds_the_feature_whose_removal_flips():
    # necessary mode: a set passes when *removing* it changes the decision, i.e. when it holds
    # feature 37 (the decision rests on 37 alone).
    context = fake_context(lambda sets: sets[:, 37], mode="necessary", max_queries=200)
    result = BandScreening().run(context)
    assert int(result.responsibility.argmax()) == 37
    assert float(result.responsibility[37]) == 1.0  # a but-for cause: responsibility 1
    assert int((result.responsibility == 1.0).sum()) == 1
    assert result.queries <= 200


def test_band_screening_credits_nothing_when_no_removal_flips():
    result = BandScreening().run(fake_context(lambda sets: torch.zeros(sets.shape[0], dtype=torch.bool),
                                              mode="necessary", max_queries=120))
    assert not bool((result.responsibility > 0).any())
    assert result.queries <= 120


def test_spectral_peaks_are_the_local_maxima_loudest_first():
    energy = torch.zeros(800)
    energy[[100, 300, 301, 500, 503]] = torch.tensor([2.0, 5.0, 5.0, 1.0, 3.0])
    # 1/800 of 800 features is one id either side: 500 is a peak of its own, 4 ids are not (503
    # hides it); of the equal pair 300/301 the lower id is kept; zero energy is never a peak.
    assert spectral_peaks(energy).tolist() == [300, 503, 100, 500]
    assert spectral_peaks(energy, spacing=4 / 800).tolist() == [300, 503, 100]
    assert spectral_peaks(torch.zeros(5)).numel() == 0


def hidden_flip(feature: int) -> Rule:
    """Removal flips the decision when the set holds ``feature`` and at most 5 features: no band
    of the first level (83 features on 4,000) holding it flips, and every one scores alike."""
    return lambda sets: sets[:, feature] & (sets.sum(dim=1) <= 5)


def test_band_screening_finds_a_flipping_peak_that_no_band_reveals_and_ranks_the_windows_around_it():
    n, feature = 4000, 3210
    energy = torch.full((n,), 1e-3, dtype=torch.float64)
    energy[[400, 1700, feature, 2600]] = torch.tensor([9.0, 8.0, 7.0, 6.0], dtype=torch.float64)
    runs = [BandScreening().run(fake_context(hidden_flip(feature), mode="necessary", max_queries=400, seed=s,
                                             n_features=n, energy=energy)) for s in (0, 0, 5)]
    assert torch.equal(runs[0].responsibility, runs[1].responsibility)
    assert torch.equal(runs[0].responsibility, runs[2].responsibility)  # nothing random in it
    result = runs[0]
    assert result.stopped_by == "minimal" and result.details["peak_flips"] == 1 and result.queries <= 400
    values = result.responsibility
    # The windows of 3 and 5 around it flip, those of 9 and 17 do not: its neighbours rank next.
    assert float(values[feature]) == 1.0
    assert values[feature - 1].item() == values[feature + 1].item() == 1 / 3
    assert values[feature - 2].item() == values[feature + 2].item() == 1 / 5
    assert int((values > 0).sum()) == 5
    # Without the peaks the descent spends the budget on equally scored bands.
    descent = BandScreening(peak_batch=0).run(fake_context(hidden_flip(feature), mode="necessary", max_queries=400,
                                                          n_features=n, energy=energy))
    assert descent.stopped_by == "max_queries" and not bool((descent.responsibility > 0).any())


def _loud_flanks(n: int, feature: int) -> torch.Tensor:
    """A loud peak at ``feature`` with loud flanks (+-2) and quiet bins further out (+-3 to +-8)."""
    energy = torch.full((n,), 1e-3, dtype=torch.float64)
    energy[feature - 8 : feature + 9] = 1.0
    energy[feature - 2 : feature + 3] = torch.tensor([30.0, 60.0, 100.0, 60.0, 30.0], dtype=torch.float64)
    energy[[feature - 5, feature - 4, feature + 4, feature + 6]] = 0.01  # the quietest neighbours
    energy[400] = 200.0  # the clip's loudest peak, elsewhere
    return energy


def test_band_screening_ranks_the_quietest_neighbours_of_a_flip_where_their_removal_flips_too():
    # Removing any set of at most 5 features that holds the flip flips: the contiguous window of
    # 5 and the flip with its 4 quietest neighbours both do, so the quieter one ranks next to it
    # (a top-5 removal that takes far less energy).
    n, feature = 4000, 3210
    energy = _loud_flanks(n, feature)
    result = BandScreening().run(fake_context(hidden_flip(feature), mode="necessary", max_queries=400,
                                              n_features=n, energy=energy))
    values = result.responsibility
    assert float(values[feature]) == 1.0 and result.details["around_flip"] == "quiet"
    quiet = [feature - 5, feature - 4, feature + 4, feature + 6]
    top5 = torch.argsort(-values, stable=True)[:5].tolist()
    assert sorted(top5) == sorted([feature, *quiet])
    assert float(energy[top5].sum()) < float(energy[feature - 2 : feature + 3].sum()) / 2
    assert int((values > 0).sum()) == 5


def test_band_screening_keeps_the_windows_where_the_quiet_neighbours_do_not_flip():
    # Removal flips only when the set holds the flip and both its neighbours: no quiet set does.
    n, feature = 4000, 3210
    energy = _loud_flanks(n, feature)

    def rule(sets):
        return sets[:, feature] & sets[:, feature - 1] & sets[:, feature + 1] & (sets.sum(dim=1) <= 5) | (
            sets[:, feature] & (sets.sum(dim=1) == 1))

    result = BandScreening().run(fake_context(rule, mode="necessary", max_queries=400, n_features=n, energy=energy))
    values = result.responsibility
    assert float(values[feature]) == 1.0 and result.details["around_flip"] == "windows"
    assert values[feature - 1].item() == values[feature + 1].item() == 1 / 3
    assert values[feature - 2].item() == values[feature + 2].item() == 1 / 5


def test_band_screening_queries_no_feature_alone_twice():
    seen = []

    def rule(sets):
        seen.extend(tuple(row.nonzero().flatten().tolist()) for row in sets)
        return torch.zeros(sets.shape[0], dtype=torch.bool)

    energy = torch.rand(200, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    result = BandScreening(stop_at_single=False).run(fake_context(rule, mode="necessary", max_queries=None,
                                                                  n_features=200, energy=energy))
    singles = [row for row in seen if len(row) == 1]
    assert sorted(singles) == [(i,) for i in range(200)]  # every feature alone, each once
    assert result.stopped_by == "searches" and result.details["peaks_screened"] > 0


def test_band_screening_refuses_bad_peak_settings():
    with pytest.raises(ValueError, match="flip_windows"):
        BandScreening(flip_windows=5)
    with pytest.raises(ValueError, match="peak_batch"):
        BandScreening(peak_batch=-1)


@pytest.mark.parametrize("name", sorted(NAMED_SEARCHES))
def test_every_named_search_is_seeded_and_within_budget(name):
    rule = holds_all(3, 30, 60)
    runs = [resolve_search(name).run(fake_context(rule, max_queries=150, seed=7)) for _ in range(2)]
    assert torch.equal(runs[0].responsibility, runs[1].responsibility)
    assert all(r.queries <= 150 for r in runs)


def test_the_registry_refuses_unknown_names_and_objects_without_run():
    with pytest.raises(ValueError, match="one of"):
        resolve_search("fastest")
    with pytest.raises(TypeError, match="run\\(context\\)"):
        resolve_search(object())


def _flip_cluster(n: int, lo: int, hi: int, loud: int) -> torch.Tensor:
    """Energy for a cluster of flipping features [lo, hi): one loud peak inside it (``loud``), the
    rest quieter the further from it, below the floor outside from 3 features out."""
    energy = torch.full((n,), 1.0, dtype=torch.float64)
    for i in range(lo, hi):
        energy[i] = 10.0 / (1 + abs(i - loud)) ** 2
    energy[loud] = 100.0
    return energy


def single_flips(lo: int, hi: int) -> Rule:
    """Removing any one feature of [lo, hi) alone flips the decision (and nothing else does)."""
    return lambda sets: (sets.sum(dim=1) == 1) & sets[:, lo:hi].any(dim=1)


def test_band_screening_leads_with_the_quietest_single_flip_near_the_first():
    # Every feature of 3200..3231 flips alone; the descent reaches the loud one at 3210 first (the
    # peak is screened alone), then 32 of the quieter features within 32 of the quietest flip,
    # spread over their energy ranks, are asked quietest first: the first of them that flips is
    # the quietest flip asked (here the quietest in reach, the far end), and it leads.
    n, lo, hi, loud = 4000, 3200, 3232, 3210
    energy = _flip_cluster(n, lo, hi, loud)
    result = BandScreening().run(fake_context(single_flips(lo, hi), mode="necessary", max_queries=400,
                                              n_features=n, energy=energy))
    values = result.responsibility
    flipping = [i for i in range(lo, hi) if float(values[i]) > 0]
    quietest = min(flipping, key=lambda i: (float(energy[i]), i))
    assert result.details["lead"] == quietest == hi - 1  # the far end of the cluster, 21 features out
    assert float(values[quietest]) == 2.0 and int((values == 2.0).sum()) == 1
    assert float(values[loud]) == 1.0  # still a but-for cause, ranked after the quieter one
    assert int(torch.argsort(-values, stable=True)[0]) == quietest
    assert result.queries <= 400
    # Without the probe the loud flip is the only one found, with responsibility 1 and no lead.
    plain = BandScreening(quieter_probes=0).run(fake_context(single_flips(lo, hi), mode="necessary", max_queries=400,
                                                             n_features=n, energy=energy))
    assert plain.details["lead"] is None and float(plain.responsibility.max()) == 1.0
    assert float(energy[int(plain.responsibility.argmax())]) > float(energy[quietest]) * 100


def test_band_screening_probes_quieter_features_within_the_budget():
    # The probe asks at most what the budget leaves after the sets around the flip, and with no
    # quieter flip the first flip keeps responsibility 1 (a unique but-for cause: no lead value).
    n, feature = 4000, 3210
    energy = _loud_flanks(n, feature)
    asked = []

    def rule(sets):
        asked.append(sets.shape[0])
        return hidden_flip(feature)(sets)

    result = BandScreening().run(fake_context(rule, mode="necessary", max_queries=400, n_features=n, energy=energy))
    assert result.details["lead"] == feature and float(result.responsibility[feature]) == 1.0
    assert result.queries <= 400 and max(asked) <= 128
    tight = BandScreening().run(fake_context(hidden_flip(feature), mode="necessary", max_queries=120,
                                             n_features=n, energy=energy))
    assert tight.queries <= 120


def test_band_screening_refuses_a_negative_probe_count():
    with pytest.raises(ValueError, match="quieter_probes"):
        BandScreening(quieter_probes=-1)


def test_the_quieter_probe_reaches_past_the_silent_floor():
    # The flipping cluster sits in a near-silent floor: the 32 quietest bins in reach are floor
    # bins that flip nothing, so the probe spreads its 32 over the energy ranks and still finds a
    # quieter flip inside the cluster.
    n, lo, hi, loud = 4000, 3200, 3232, 3210
    energy = _flip_cluster(n, lo, hi, loud)
    energy[lo - 40 : lo] = 1e-4
    energy[hi : hi + 40] = 1e-4
    result = BandScreening().run(fake_context(single_flips(lo, hi), mode="necessary", max_queries=400,
                                              n_features=n, energy=energy))
    lead = result.details["lead"]
    assert lo <= lead < hi and float(energy[lead]) < float(energy[loud]) / 100
    assert float(result.responsibility[lead]) == 2.0


def test_spread_keeps_the_ends_and_the_order():
    from captum_freqrex._core.search.band_screening import _spread

    picked = _spread(list(range(100, 200)), 32)
    assert len(picked) == 32 and picked[0] == 100 and picked[-1] == 199 and picked == sorted(picked)
    assert _spread([5, 3, 9], 32) == [5, 3, 9]
    assert _spread(list(range(10)), 1) == [0]


def removes_more_than(count: int) -> Rule:
    """necessary mode: the decision changes only when more than ``count`` features are removed."""
    return lambda sets: sets.sum(dim=1) > count


def test_band_screening_falls_back_to_wide_parts_where_only_wide_removals_flip():
    # 800 features; removing more than 90 flips the decision. No band, core, single or union of
    # the screening is that wide, so only the wide parts (8 of 100, 4 of 200, 2 of 400) flip; the
    # narrowest of them is the answer: each feature 1/100.
    context = fake_context(removes_more_than(90), mode="necessary", max_queries=200, n_features=800)
    result = BandScreening().run(context)
    assert result.details["wide_flip"] == 100
    assert torch.allclose(result.responsibility, torch.full((800,), 1 / 100, dtype=torch.float64))
    assert result.queries <= 200


def test_band_screening_keeps_the_wide_parts_queries_back_within_a_tight_budget():
    # The descent alone would spend the whole budget: the 14 wide parts are kept back for the end.
    context = fake_context(removes_more_than(90), mode="necessary", max_queries=100, n_features=800)
    result = BandScreening().run(context)
    assert result.queries <= 100 and result.details["wide_flip"] == 100


def test_band_screening_screens_no_wide_part_where_a_smaller_removal_flips():
    context = fake_context(lambda sets: sets[:, 37], mode="necessary", max_queries=200, n_features=800)
    result = BandScreening().run(context)
    assert result.details["wide_flip"] is None
    assert float(result.responsibility[37]) == 1.0 and int((result.responsibility > 0).sum()) < 100


def test_band_screening_screens_no_wide_part_where_removing_everything_keeps_the_decision():
    # Non-monotone: removing 91 to 700 features flips, removing all 800 does not (root fails).
    rule = lambda sets: (sets.sum(dim=1) > 90) & (sets.sum(dim=1) <= 700)  # noqa: E731
    context = fake_context(rule, mode="necessary", max_queries=200, n_features=800)
    assert not context.root_passes
    result = BandScreening().run(context)
    assert result.details["wide_flip"] is None and not bool((result.responsibility > 0).any())
    # Without the fallback the answer where the root flips is no answer at all.
    bare = BandScreening(wide_splits=()).run(
        fake_context(removes_more_than(90), mode="necessary", max_queries=200, n_features=800))
    assert bare.details["wide_flip"] is None and not bool((bare.responsibility > 0).any())


def test_band_screening_refuses_bad_wide_splits():
    with pytest.raises(ValueError, match="wide_splits"):
        BandScreening(wide_splits=(8, 1))
    with pytest.raises(TypeError, match="wide_splits must be a sequence"):
        BandScreening(wide_splits=8)


def test_band_screening_stops_once_patience_queries_pass_without_a_flip():
    # Nothing flips (removing everything does not either): with patience 40 the screening stops
    # 40 queries after its first level, not at the budget, and the unions and loud runs still end it.
    never = lambda sets: torch.zeros(sets.shape[0], dtype=torch.bool)  # noqa: E731
    first_level = len(_first_level(800, BandScreening().n_bands, BandScreening().log_bands))
    patient = BandScreening(patience=40).run(fake_context(never, mode="necessary", max_queries=600, n_features=800))
    assert patient.stopped_by == "patience"
    ends = len(UNION_SIZES) + 1 + loud_runs.QUERIES
    assert first_level + 40 <= patient.queries <= first_level + 40 + BandScreening().peak_batch + ends
    unbounded = BandScreening(patience=None).run(fake_context(never, mode="necessary", max_queries=600, n_features=800))
    assert unbounded.stopped_by == "max_queries" and unbounded.queries > 550


def test_band_screening_patience_counts_from_the_last_flip():
    # Removing more than 90 features flips: the first-level bands and the loud runs (80 features at
    # most) do not, the wide parts do. With the default patience the screening stops at first
    # level + 500 where the budget is larger, and the wide parts, kept back until then, still answer.
    context = fake_context(removes_more_than(90), mode="necessary", max_queries=2000, n_features=800)
    result = BandScreening().run(context)
    first_level = len(_first_level(800, BandScreening().n_bands, BandScreening().log_bands))
    assert result.stopped_by == "patience" and result.details["wide_flip"] == 100
    assert result.queries <= first_level + PATIENCE + BandScreening().peak_batch + 20 + loud_runs.QUERIES
    assert result.details["loud_run_flip"] is None
    # Each flipping set found restarts the count: with a patience of 1 query, the descent to a
    # single flip goes on batch after batch (its band, then its sub-band, then the bin), since
    # each batch holds a removal that flips.
    found = BandScreening(patience=1).run(fake_context(lambda sets: sets[:, 437], mode="necessary", max_queries=600, n_features=800))
    assert found.stopped_by == "minimal" and float(found.responsibility[437]) >= 1.0


def test_band_screening_refuses_a_patience_below_one():
    with pytest.raises(ValueError, match="patience"):
        BandScreening(patience=0)
