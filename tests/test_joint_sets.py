"""Searched sufficient-and-necessary and complete sets (certify/joint.py) on known-answer models."""

import pytest
import torch

from captum_freqrex import FreqReX, FreqReXOptions
from captum_freqrex._core.certify.joint import GROWTH_GRID, _both_prefix, _both_smallest_first, _complete_set, _until_one_holds
from captum_freqrex._core.records import ProbeResult
from captum_freqrex._core.search.evaluation import KnownOutputs
from captum_freqrex._explanation import Explanation
from known_models import SAMPLE_RATE, BandNeedsContext, ToneDetector, band_needs_context_clip, bin_of, tone

BIN_440 = bin_of(440, SAMPLE_RATE)
BIN_1000 = bin_of(1000, SAMPLE_RATE)


def _members(causal_set) -> list:
    return causal_set.mask.nonzero().squeeze(1).tolist()


def _worst_ranking(clip: torch.Tensor, *last: int) -> torch.Tensor:
    # Attributions that rank the given bins last: every prefix holding them is nearly the spectrum.
    scores = torch.ones(1, clip.shape[-1] // 2 + 1)
    scores[0, list(last)] = 0.0
    return scores


def test_searched_set_is_the_decisive_bin_where_the_prefix_is_the_whole_spectrum(detector, tone_clip):
    """The detector hears 440 Hz alone: kept alone it keeps the decision, removed it flips it. A
    ranking that puts 440 Hz last makes every prefix set nearly the whole spectrum; the search finds
    {440 Hz} from the necessary-mode evidence, whatever the ranking."""
    scores = _worst_ranking(tone_clip, BIN_440)
    prefix = FreqReX(detector).explain(tone_clip, attributions=scores, max_joint_queries=0)[0]
    n = scores.shape[-1]
    assert prefix.sufficient_necessary.size > n // 2  # today's prefix: "remove almost everything"
    searched = FreqReX(detector).explain(tone_clip, attributions=scores)[0]
    sn, complete = searched.sufficient_necessary, searched.complete
    assert _members(sn) == [BIN_440] and sn.certified and sn.flip_class == 0
    assert sn.certificate.note.startswith("searched") and sn.certificate.shrink.start == "joint"
    assert sn.certificate.shrink.size == 1
    assert _members(complete) == [BIN_440] and complete.certified
    # Re-query the model ourselves on the returned waveforms: both claims hold.
    assert detector(searched.waveform("sufficient_necessary").unsqueeze(0)).argmax(1).item() == 1
    assert detector(searched.waveform("sufficient_necessary", removed=True).unsqueeze(0)).argmax(1).item() == 0
    confidence = detector(searched.waveform("complete").unsqueeze(0)).softmax(1)[0, 1]
    assert confidence >= searched.original.confidence - 0.05


def test_redundant_pair_is_found_as_the_pair(tone_clip, monkeypatch):
    """440 Hz or 1 kHz alone suffices, so no single removal flips the decision: the only
    sufficient-and-necessary set among these causes is the pair, and it is what is returned. No
    band holds both tones; the loud runs do, and the note says so. Without the runs, the ranking's
    shortest flipping prefix gives the same pair."""
    import captum_freqrex._core.certify.joint as joint

    either = ToneDetector([440, 1000], threshold=0.3)
    explanation = FreqReX(either).explain(tone_clip)[0]
    sn = explanation.sufficient_necessary
    assert sorted(_members(sn)) == [BIN_440, BIN_1000] and sn.certified
    assert sn.certificate.shrink.start == "joint-loud-runs"
    assert "runs of the loudest features whose removal changes the decision" in sn.certificate.note
    for gone in ([BIN_440], [BIN_1000]):  # neither removal alone changes the decision
        spectrum = torch.fft.rfft(tone_clip)
        spectrum[0, gone] = 0
        assert either(torch.fft.irfft(spectrum, n=tone_clip.shape[-1])).argmax(1).item() == 1
    assert either(explanation.waveform("sufficient_necessary", removed=True).unsqueeze(0)).argmax(1).item() == 0

    monkeypatch.setattr(joint, "_loud_run_set", lambda *args: None)
    without = FreqReX(either).explain(tone_clip)[0].sufficient_necessary
    assert sorted(_members(without)) == [BIN_440, BIN_1000] and without.certificate.shrink.start == "joint-prefix"


def test_the_search_is_bounded_and_counted(detector, tone_clip):
    scores = _worst_ranking(tone_clip, BIN_440)
    for budget in (100, 256):
        searched = FreqReX(detector).explain(tone_clip, attributions=scores, max_joint_queries=budget)[0]
        # the sufficient prefix (64), its shrink (64), the search, the certification of four sets
        assert 0 < searched.extraction_queries <= 64 + 64 + budget + 6
        assert searched.stats.queries == 2 + searched.extraction_queries  # the anchors, then extraction
        assert searched.sufficient_necessary.certified and searched.complete.certified


def test_a_sufficient_set_whose_removal_flips_is_the_answer_at_once(detector, tone_clip):
    """The tone task: the sufficient set {440 Hz} also flips the decision when removed, so it is the
    sufficient-and-necessary set and, reaching the input's confidence alone, the complete set: the
    search asks two questions (its removal, then it kept alone: it is the responsibility search's
    own one-bin set, so no prefix extraction ran to ask it), no screening, no bands, no growth; the
    three prefix searches of the ranking cost more. The certification re-queries the one set kept
    alone once and removed once."""
    default = FreqReX(detector).explain(tone_clip)[0]
    off = FreqReX(detector).explain(tone_clip, max_joint_queries=0)[0]
    for name in ("sufficient", "sufficient_necessary", "complete"):
        causal_set = getattr(default, name)
        assert _members(causal_set) == [BIN_440] and causal_set.certified
    assert default.sufficient_necessary.certificate.note.startswith("searched")
    assert default.sufficient_necessary.certificate.shrink.queries == 2
    assert default.extraction_queries < off.extraction_queries
    assert _members(off.sufficient_necessary) == [BIN_440]  # the prefix agrees
    # Re-query: removing the returned set flips the decision.
    assert detector(default.waveform("sufficient_necessary", removed=True).unsqueeze(0)).argmax(1).item() == 0


def test_searched_sets_survive_save_and_load(detector, tone_clip, tmp_path):
    explanation = FreqReX(detector).explain(tone_clip, attributions=_worst_ranking(tone_clip, BIN_440))[0]
    loaded = Explanation.load(explanation.save(str(tmp_path / "searched.pt")))
    assert loaded.sufficient_necessary.certificate == explanation.sufficient_necessary.certificate
    assert torch.equal(loaded.complete.mask, explanation.complete.mask)


@pytest.mark.parametrize("value, error, match", [
    (-1, ValueError, "max_joint_queries must be >= 0"),
    (2.5, TypeError, "max_joint_queries must be an int"),
    (True, TypeError, "max_joint_queries must be an int"),
])
def test_bad_budgets_are_refused(detector, tone_clip, value, error, match):
    with pytest.raises(error, match=match):
        FreqReX(detector).explain(tone_clip, max_joint_queries=value)
    with pytest.raises(error, match=match):
        FreqReXOptions(max_joint_queries=value)


@pytest.mark.parametrize("gone", [[5, 6, 7], [0], [9], [3, 8], [42], [], [7, 6]])
def test_shrink_drops_runs_singles_and_scattered_features_alike(gone):
    from captum_freqrex._core.search.shrink import _without

    members = [3, 1, 4, 0, 5, 6, 7, 2, 8, 9]
    assert _without(members, gone) == [f for f in members if f not in set(gone)]


def test_the_shrink_counts_the_queries_its_test_made():
    """A test that asks a second question only where the first held (the joint search's
    removal-first check) costs 1 or 2 queries a set: the shrink counts what it made, within the
    budget it was given, and finds the one feature both claims need."""
    from captum_freqrex._core.search.shrink import shrink_set

    made = []

    def test(sets):
        verdicts = []
        for ids in sets:
            made.append(1 + (7 in ids))  # the second question only where the first held
            verdicts.append(7 in ids)
        return verdicts

    members = list(range(40))
    kept, report = shrink_set(test, members, 60, torch.Generator().manual_seed(0), spent=lambda: sum(made),
                              max_cost=2)
    assert kept == [7] and report.size == 1
    assert report.queries == sum(made) <= 60
    assert sum(made) < 2 * len(made)  # fewer than two queries a set: the budget went further


def test_a_set_too_large_for_single_features_spends_its_last_queries_on_chunks_that_fit():
    """A set of 1,000 features that stays sufficient while at most 100 of them are gone: halves,
    quarters and eighths fail, and the next granularity (16 chunks) does not fit in what the budget
    leaves. One more round of as many chunks as fit (chunks of about 83) drops one of them, where
    single features would have dropped one feature per query at best."""
    from captum_freqrex._core.search.shrink import shrink_set

    members = list(range(1000))
    asked = []

    def test(sets):
        asked.extend(len(ids) for ids in sets)
        return [len(ids) >= 900 for ids in sets]

    kept, report = shrink_set(test, members, 34, torch.Generator().manual_seed(0))
    assert len(kept) <= 920 and report.size == len(kept)
    gone = sorted(set(members) - set(kept))
    assert gone == list(range(gone[0], gone[-1] + 1))  # one chunk of about 83, not a few features
    assert report.queries == len(asked) <= 34
    assert all(test([kept]))


def test_removals_that_pass_alone_are_tried_together_and_dropped_at_once_where_that_passes():
    """One feature of ten is the cause (feature 0): each of the other nine removals passes alone,
    and so does removing all nine at once, one query more. The shrink drops them together instead
    of one a batch (which took a batch of queries per deletion: 25 bins left of the zoo's 10 s
    piano's 73 at 64 queries, 3 with the passing removals together)."""
    from captum_freqrex._core.search.shrink import shrink_set

    def test(sets):
        return [0 in list(ids) for ids in sets]

    kept, report = shrink_set(test, list(range(10)), 40, torch.Generator().manual_seed(0))
    assert kept == [0] and report.one_minimal
    assert report.queries == 10 + 1  # the ten single removals, then the nine at once


def test_removals_that_pass_alone_but_not_together_go_one_at_a_time():
    """Any nine of ten features pass: every single removal passes, removing two does not. The
    shrink tries the ten at once (one query, which fails), drops one (the lowest-ranked) and proves
    the other nine 1-minimal, asking each of their removals once: a sweep after a deletion asked
    again the removals already known to fail on the set (9 queries more here)."""
    from captum_freqrex._core.search.shrink import shrink_set

    def test(sets):
        return [len(list(ids)) >= 9 for ids in sets]

    kept, report = shrink_set(test, list(range(10)), 40, torch.Generator().manual_seed(0))
    assert kept == list(range(9)) and report.one_minimal and report.checked == 9
    assert report.queries == 10 + 1 + 9  # the singles, the failed try of all ten, each of the nine once


def test_chunks_whose_removals_pass_are_dropped_together_where_that_passes():
    """Feature 0 of 1,000 is the cause: of the first round's halves, quarters and eighths every one
    without feature 0 passes, and the widest that do not overlap (the upper half, then the
    quarter and the eighth below it) are removed at once, one query more: 125 features are left
    after the round, not 500, and the shrink reaches the cause within its budget."""
    from captum_freqrex._core.search.shrink import shrink_set

    sizes = []

    def test(sets):
        sizes.extend(len(list(ids)) for ids in sets)
        return [0 in list(ids) for ids in sets]

    kept, report = shrink_set(test, list(range(1000)), 64, torch.Generator().manual_seed(0))
    assert sizes[14] == 125  # the round's 14 chunks, then the three removed together
    assert kept == [0] and report.one_minimal and report.queries <= 64


def test_a_shrink_without_the_sampled_check_makes_the_same_deletions_for_fewer_queries():
    """The sufficient-and-necessary set's shrink (two claims, so up to two queries a set) keeps
    nothing back for the sampled check: within SHRINK_QUERIES (48) it deletes what the shrink of 64
    queries with 16 kept back deleted, and samples nothing. The complete set's shrink keeps its
    check."""
    from captum_freqrex._core.certify import joint
    from captum_freqrex._core.search.shrink import shrink_set

    def test(sets):
        return [len(ids) >= 900 for ids in sets]  # sufficient while at most 100 of 1,000 are gone

    members = list(range(1000))
    checked, report = shrink_set(test, members, 64, torch.Generator().manual_seed(0), max_cost=2)
    unchecked, lean = shrink_set(test, members, joint.SHRINK_QUERIES, torch.Generator().manual_seed(0),
                                 check=0, max_cost=2)
    assert unchecked == checked and report.checked > 0 and lean.checked == 0
    assert lean.queries == report.queries - report.checked  # the check's queries are saved


def test_only_the_complete_sets_shrink_keeps_queries_back_for_its_check(monkeypatch):
    """Both searched sets of two needed tones are shrunk: the sufficient-and-necessary set's with
    no queries kept back for the check, the complete set's with SHRINK_CHECK."""
    import captum_freqrex._core.certify.joint as joint

    checks = []
    real = joint.shrink_set
    monkeypatch.setattr(joint, "shrink_set", lambda *a, **k: checks.append((k["check"], k["max_cost"])) or real(*a, **k))
    detector = ToneDetector([1100, 1400], threshold=0.5)
    expl = FreqReX(detector).explain((tone(1100) + tone(1400)).unsqueeze(0))[0]
    assert checks == [(0, 2), (joint.SHRINK_CHECK, 1)]
    assert expl.sufficient_necessary.certified and expl.complete.certified


def test_the_screening_reads_back_the_bands_the_search_removed_first():
    """Two tones 20 Hz apart, either of which the detector hears: no single bin's removal flips the
    decision, the 1/16 band holding both does. The joint search removes the 16 equal bands first;
    the band screening that follows starts from the same bands and reads their answers back, so
    the model sees each band's removal once in the whole explanation, and the answer is the pair."""
    clip = (tone(440) + tone(460) + 0.05 * torch.randn(SAMPLE_RATE, generator=torch.Generator().manual_seed(0)))
    clip = clip.unsqueeze(0)
    either = ToneDetector([440, 460], threshold=0.5)
    seen = []

    def recording(x: torch.Tensor) -> torch.Tensor:
        seen.append(x.detach().clone())
        return either(x)

    explanation = FreqReX(recording).explain(clip)[0]
    pair = sorted([bin_of(440, SAMPLE_RATE), bin_of(460, SAMPLE_RATE)])
    assert sorted(_members(explanation.sufficient_necessary)) == pair
    assert explanation.sufficient_necessary.certified
    assert explanation.stats.queries == sum(rows.shape[0] for rows in seen)
    rows, spectrum = torch.cat(seen), torch.fft.rfft(clip[0])
    bounds = torch.linspace(0, spectrum.numel(), 17).round().long().tolist()
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        removed = spectrum.clone()
        removed[lo:hi] = 0
        band_gone = torch.fft.irfft(removed, n=clip.shape[-1])
        assert int(((rows - band_gone).abs().amax(dim=1) < 1e-4).sum()) == 1, (lo, hi)


def test_known_outputs_read_back_known_sets_and_query_only_the_others():
    sets = torch.eye(4)  # four one-feature sets
    outputs = torch.arange(8.0).reshape(4, 2)
    known = KnownOutputs(sets[[0, 2]], outputs[[0, 2]])
    asked = []

    def query(rows: torch.Tensor) -> torch.Tensor:
        asked.append(rows.argmax(dim=1).tolist())
        return outputs[rows.argmax(dim=1)]

    assert torch.equal(known.outputs(sets[[3, 0, 1, 2]], query), outputs[[3, 0, 1, 2]])
    assert asked == [[3, 1]] and known.hits == 2
    assert torch.equal(known.outputs(sets[[1]], query), outputs[[1]]) and known.hits == 2


def test_a_growth_round_stops_asking_at_the_first_size_that_holds():
    """The complete set's growth asks its ascending grid four sizes per model call and stops at the
    first that reaches: the bracket it needs (the smallest size that holds, every size below it)
    is the one asking all of them gives."""
    asked = []

    def reaches(sets):
        asked.append([len(s) for s in sets])
        return [len(s) >= 3 for s in sets]

    known = _until_one_holds(reaches, lambda k: list(range(k)), [1, 2, 3, 5, 8, 13, 21, 34])
    assert asked == [[1, 2, 3, 5]]
    assert known == {1: False, 2: False, 3: True, 5: True}
    none_hold = _until_one_holds(lambda sets: [False] * len(sets), lambda k: [k], [1, 2, 3, 5, 8])
    assert none_hold == dict.fromkeys([1, 2, 3, 5, 8], False)  # every size asked when none holds


class _CountingProbe:
    """A stand-in for the joint search's probe, on the prefixes of one order (``range(k)``, as lists
    or tensor slices): removing one changes the decision from 2 features up; keeping one alone
    keeps it from ``kept_from`` up."""

    def __init__(self, kept_from=5):
        self.spent, self.known, self.asked, self.kept_from = 0, {}, [], kept_from

    def key(self, ids, removed):
        return len(ids), removed  # prefixes of one order: the size is the set

    def results(self, sets, removed):
        out = []
        for ids in sets:
            key = self.key(ids, removed)
            if key not in self.known:
                self.spent += 1
                self.asked.append((len(ids), removed))
                flips, kept = len(ids) >= 2, len(ids) >= self.kept_from
                self.known[key] = ProbeResult(not flips, 0, 0.5) if removed else ProbeResult(kept, 1, 0.9)
            out.append(self.known[key])
        return out


def test_both_claims_are_asked_kept_alone_smallest_first_and_charged_in_full():
    """Every removal in one call; then the sets whose removal flipped kept alone, four a call,
    smallest first, until one keeps the decision: the smallest set holding both claims and every
    verdict below it, as asking all would give, charged as if all were asked (the bracket
    search's rounds stay what they were)."""
    probe = _CountingProbe()
    sizes = [1, 2, 3, 5, 8, 13, 21, 34]
    verdicts, cost = _both_smallest_first(probe, [list(range(k)) for k in sizes], sizes)
    assert min(k for k, ok in verdicts.items() if ok) == 5
    assert not any(verdicts[k] for k in (1, 2, 3)) and 13 not in verdicts  # past the first call that holds
    assert [k for k, removed in probe.asked if not removed] == [2, 3, 5, 8]
    assert cost == 8 + 7 and probe.spent == 8 + 4


def test_the_prefix_search_below_a_holding_candidate_narrows_only_what_could_replace_it():
    """Where a candidate of ``below`` features holds both claims already, the ranking's prefixes
    get one round of counts; the bracket is narrowed only where that round found a prefix shorter
    than the candidate (a longer one would not replace it), and then as without the candidate."""
    ranking = torch.arange(8000)
    none_shorter = _CountingProbe(kept_from=3000)  # no prefix under 3,000 features keeps the decision
    assert _both_prefix(none_shorter, ranking, True, 48, below=1000) is None
    assert none_shorter.spent <= 2 * GROWTH_GRID
    unbounded = _CountingProbe(kept_from=3000)
    assert _both_prefix(unbounded, ranking, True, 48) >= 3000 and unbounded.spent > none_shorter.spent
    shorter = _CountingProbe(kept_from=300)
    found = _both_prefix(shorter, ranking, True, 48, below=1000)
    assert found is not None and 300 <= found < 1000
    assert found == _both_prefix(_CountingProbe(kept_from=300), ranking, True, 48)


def test_a_one_bin_search_set_needs_no_prefix_extraction(detector, tone_clip, monkeypatch):
    """The responsibility search saw {440 Hz} pass alone; nothing smaller passes (the baseline alone
    fails), so it is the sufficient set and the ranking's sufficient prefix, which the shrink would
    only start from and the joint search no longer needs, is not searched. Without the shrink the
    sets are the ranking's prefixes, and the extraction runs as before."""
    import captum_freqrex._core.certify.certify as certify_module

    calls = []
    real = certify_module._find_prefixes
    monkeypatch.setattr(certify_module, "_find_prefixes", lambda *a, **k: calls.append(1) or real(*a, **k))
    expl = FreqReX(detector).explain(tone_clip)[0]
    assert calls == [] and _members(expl.sufficient) == [BIN_440] and expl.sufficient.certified
    assert detector(expl.waveform("sufficient").unsqueeze(0)).argmax(1).item() == 1
    assert expl.stats.queries == 2 + expl.responsibility_queries + expl.extraction_queries
    prefixes = FreqReX(detector).explain(tone_clip, shrink=False)[0]
    assert calls == [1] and _members(prefixes.sufficient) == [BIN_440]


@pytest.mark.parametrize("second_hz, screened", [(1400, False), (1200, True)])
def test_a_screening_runs_where_a_fine_band_flips_or_no_band_candidate_holds(monkeypatch, second_hz, screened):
    """Two tones, each enough alone: removing either changes nothing, removing both flips the
    decision. At 1,100 and 1,200 Hz one 1/16 band (250 bins of a 1 s clip at 8 kHz) holds both,
    its removal flips, and the band screening descends from it within SCREEN_QUERIES. At 1,100 and
    1,400 Hz they sit in two 1/16 bands of one 1/8 band: no 1/16 band's removal flips, only the 1/8
    band's, and that band holds both claims itself (kept alone it keeps both tones), so a
    screening, which would start blind, is not run. Either way the searched
    sufficient-and-necessary set is the pair: from the screening's flips, or from the band's
    loudest members."""
    import captum_freqrex._core.certify.joint as joint

    budgets = []
    real = joint.flip_candidates
    monkeypatch.setattr(joint, "flip_candidates", lambda q, a, budget, *rest: budgets.append(budget) or real(q, a, budget, *rest))
    detector = ToneDetector([1100, second_hz], threshold=0.5)
    clip = (tone(1100) + tone(second_hz)).unsqueeze(0)
    expl = FreqReX(detector).explain(clip)[0]
    assert budgets == ([joint.SCREEN_QUERIES] if screened else [])
    assert _members(expl.sufficient_necessary) == [bin_of(1100, SAMPLE_RATE), bin_of(second_hz, SAMPLE_RATE)]
    assert expl.sufficient_necessary.certified


class _WindowProbe:
    # A stand-in for the joint search's _Probe: a set keeps the decision alone at the input's
    # confidence only when it adds a count of features inside ``window`` to the core, or all of them
    # (the confidence is not monotone in what is added, as on held-out percussion).
    def __init__(self, core: list, window: range, n: int) -> None:
        self.core, self.window, self.n, self.spent, self.asked = len(core), window, n, 0, []

    def results(self, sets, removed):
        answers = []
        for ids in sets:
            added = len(ids) - self.core
            reaches = added in self.window or added == self.n - self.core
            self.spent += 1
            self.asked.append(added)
            answers.append(ProbeResult(passes=True, decided=1, confidence=0.9 if reaches else 0.5))
        return answers


@pytest.mark.parametrize("window, checked", [(range(1000, 2200), False), (range(3, 6), True)])
def test_the_complete_sets_check_runs_only_where_its_shrink_can_reach_single_features(monkeypatch, window, checked):
    """Of more added features than its shrink has queries, the complete set's shrink is not asked
    for the sampled check of single removals (it could only count bins that may still go), and its
    deletions get what they had beside the check: the same set as with the check, for the check's
    queries fewer. Of a few added features the check runs."""
    import captum_freqrex._core.certify.joint as joint

    n, core = 8000, [0, 1, 2]

    def complete():
        probe = _WindowProbe(core, window, n)
        found, report = _complete_set(probe, core, torch.arange(n), target_confidence=0.8, budget=32, seed=0)
        return found, report, probe.spent

    found, report, spent = complete()
    assert (report.checked > 0) == checked
    monkeypatch.setattr(joint, "_complete_check", lambda added, budget: joint.SHRINK_CHECK)  # the check always
    always, report_always, spent_always = complete()
    assert found == always and report.size == report_always.size
    if not checked:
        assert report_always.checked > 0 and spent == spent_always - report_always.checked


@pytest.mark.parametrize("window", [range(100, 216), range(20, 44), range(1000, 2200)])
def test_complete_growth_finds_a_small_reaching_window_of_a_non_monotone_model(window):
    """The confidence reaches the target only for additions inside a window about twice as wide as
    its low end (and for the whole input): the first geometric grid does not step over it, so the
    complete set comes out inside the window, not near the whole input, within the growth's
    budget."""
    n, core = 8000, [0, 1, 2]
    probe = _WindowProbe(core, window, n)
    ranking = torch.arange(n)
    found, report = _complete_set(probe, core, ranking, target_confidence=0.8, budget=32, seed=0)
    added = len(found) - len(core)
    assert added <= window.stop - 1  # in the window, or shrunk below it (each shrink step re-asked)
    assert found[: len(core)] == core and report.size == len(found)
    assert probe.spent <= 32
    assert any(a in window for a in probe.asked)


def test_a_flipping_band_that_needs_its_context_is_grown_along_the_ranking(monkeypatch):
    """BandNeedsContext: removing its quiet band flips the decision, but the band kept alone with
    the sufficient bin names another class, and the single flip the screening finds (the decoy)
    grown along the ranking holds only past the backdrop. The band grown along the ranking (the
    sufficient bin, the decoy and the context come first) holds both claims, and its shrink ends
    on about 30 bins: the decoy, context bins and a tenth of the band, both claims re-queried.
    Without that candidate the set is shrunk from most of the spectrum and ends several times
    larger."""
    import captum_freqrex._core.certify.joint as joint

    clip = band_needs_context_clip()
    model = BandNeedsContext(clip)
    found = FreqReX(model).explain(clip)[0]
    chosen = found.sufficient_necessary
    members = _members(chosen)
    assert chosen.certified and chosen.certificate.shrink.start_size <= 2 * len(model.BAND) + 1
    assert model.DECOY in members and len(members) <= 40
    assert len([i for i in members if i in model.BAND]) >= len(model.BAND) // 10
    assert model(found.waveform("sufficient_necessary").unsqueeze(0)).argmax(1).item() == 1
    assert model(found.waveform("sufficient_necessary", removed=True).unsqueeze(0)).argmax(1).item() != 1

    monkeypatch.setattr(joint, "_grown_band", lambda *args: [])
    without = FreqReX(model).explain(clip)[0].sufficient_necessary
    assert without.certificate.shrink.start_size > len(clip[0]) // 8 and without.size >= 3 * chosen.size


class HearsAnything(torch.nn.Module):
    """Class 1 on any sound (RMS above 1e-6), class 0 on silence: on white noise, whose every bin
    holds energy, only the removal of every bin changes the decision."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        heard = x.pow(2).mean(dim=-1).sqrt() > 1e-6
        margin = torch.where(heard, 1.0, -1.0)
        return torch.stack([-margin, margin], dim=1)


def test_a_sufficient_and_necessary_set_of_every_feature_is_its_own_complete_set():
    """Where only the whole input holds both claims, the complete set, which holds its core, is the
    whole input too: certified and said so, not "none found" (which left the explanation
    uncertified, nothing having failed a re-query)."""
    noise = 0.1 * torch.randn(1, SAMPLE_RATE // 2, generator=torch.Generator().manual_seed(0))
    explanation = FreqReX(HearsAnything()).explain(noise, max_queries=200)[0]
    n = noise.shape[-1] // 2 + 1
    sn, complete = explanation.sufficient_necessary, explanation.complete
    assert sn.size == n and sn.certified and sn.flip_class == 0
    assert complete is not None and complete.size == n and complete.certified
    assert complete.certificate.note.startswith("the whole input")
    assert complete.certificate.shrink.start == "joint-core" and explanation.certified
    flags = explanation.summary()["flags"]
    assert {entry["set"] for entry in flags} >= {"sufficient_necessary", "complete"}  # most of the spectrum, said
    # Its next step is its core's (bands, another baseline): a lower tolerance cannot shrink it.
    (step,) = {entry["next_step"] for entry in flags if entry["set"] in ("sufficient_necessary", "complete")}
    assert "complete_tolerance" not in step and "--bands" in step
