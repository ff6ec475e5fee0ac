"""Removals of runs of loud features that change the decision (search/loud_runs.py), and the
joint search's and band screening's use of them, on known-answer models."""

import math
from types import SimpleNamespace

import pytest
import torch

from captum_freqrex import FreqReX
from captum_freqrex._core.certify import joint
from captum_freqrex._core.records import ProbeResult
from captum_freqrex._core.search import loud_runs
from known_models import ScatteredKeyPartials, scattered_key_partials_clip


class _KeyRemovals:
    """The model on removals from 400 features whose loudest tenth (every tenth id, loud ones first)
    holds ``key``: the decision changes once every key feature is gone, unless one of ``guards``
    goes too (a model that is not monotone in what is removed); the margin falls with each key
    feature removed, so the runs that hold them look closest to a change."""

    def __init__(self, key, guards=(), margins=True):
        self.key, self.guards, self.margins, self.asked = set(key), set(guards), margins, []

    def __call__(self, sets):
        self.asked.append(len(sets))
        out = []
        for ids in sets:
            gone = set(ids.tolist())
            changed = self.key <= gone and not (self.guards & gone)
            margin = -0.1 if changed else 1.0 - len(self.key & gone) / (len(self.key) + 1)
            out.append(ProbeResult(not changed, 1 if changed else 0, 0.5 + margin / 2,
                                   margin=margin if self.margins else math.nan))
        return loud_runs.probe_verdicts(out)


POOL = loud_runs.loud_pool(torch.arange(4000))  # ids 0..399, the loudest tenth of 4,000


def test_the_pool_is_the_loudest_tenth_in_id_order():
    loudest = torch.tensor([7, 3, 9, 1, 0, 2, 4, 5, 6, 8, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19])
    assert loud_runs.loud_pool(loudest).tolist() == [3, 7]
    assert loud_runs.loud_pool(loudest[:3]).tolist() == [7]  # at least one


def test_a_single_run_that_flips_is_the_answer_after_one_call():
    removals = _KeyRemovals(key=POOL[40:43].tolist())  # inside one run of a 400-feature pool's 32
    found = loud_runs.loud_run_flip(removals, POOL)
    assert found is not None and set(POOL[40:43].tolist()) <= set(found.tolist()) and found.numel() <= 13
    assert removals.asked == [32]


def test_a_key_spread_over_runs_is_found_as_a_union_ordered_by_margin():
    """Key features in runs 3, 17 and 30: no run's removal flips; those runs lowered the margin
    most, so the union of the first three is the answer, asked three unions a call."""
    runs = list(torch.tensor_split(POOL, 32))
    key = [int(runs[i][0]) for i in (3, 17, 30)]
    removals = _KeyRemovals(key)
    found = loud_runs.loud_run_flip(removals, POOL)
    assert found is not None and sorted(found.tolist()) == sorted(torch.cat([runs[i] for i in (3, 17, 30)]).tolist())
    assert removals.asked == [32, 3]  # unions of 2, 3, 4: stopped after the call that flipped


def test_a_removal_that_undoes_the_flip_leaves_no_answer_after_every_run_and_union():
    """A guard feature whose removal undoes the key's flip and lowers the margin as a key feature
    does: its run comes first in the order, so every union holds it and none flips; every run and
    union was asked (the limit of one greedy order)."""
    runs = list(torch.tensor_split(POOL, 32))
    key, guard = {int(runs[i][0]) for i in (3, 17)}, int(runs[1][0])
    asked = []

    def removals(sets):
        asked.append(len(sets))
        out = []
        for ids in sets:
            gone = set(ids.tolist())
            changed = key <= gone and guard not in gone
            margin = -0.1 if changed else 1.0 - 0.3 * len((key | {guard}) & gone)
            out.append(ProbeResult(not changed, int(changed), 0.5, margin=margin))
        return loud_runs.probe_verdicts(out)

    assert loud_runs.loud_run_flip(removals, POOL) is None
    assert sum(asked) == loud_runs.QUERIES


def test_without_margins_the_runs_are_ordered_by_confidence():
    runs = list(torch.tensor_split(POOL, 32))
    key = [int(runs[i][0]) for i in (5, 9)]
    removals = _KeyRemovals(key, margins=False)
    found = loud_runs.loud_run_flip(removals, POOL)
    assert found is not None and set(key) <= set(found.tolist()) and found.numel() == 2 * runs[0].numel()


class _GateProbe:
    """The joint search's probe on a stand-in: the loud pool with S kept alone does (or does not) keep
    the decision; no removal ever changes it."""

    def __init__(self, pool_kept):
        self.spent, self.pool_kept = 0, pool_kept

    def results(self, sets, removed):
        self.spent += len(sets)
        return [ProbeResult(True, 0, 0.9, margin=0.8) if removed else ProbeResult(self.pool_kept, 0, 0.9)
                for _ in sets]


def test_the_runs_are_asked_only_where_the_loud_features_with_s_keep_the_decision():
    queries = SimpleNamespace(example=0, space=SimpleNamespace(loudest_first=lambda example: torch.arange(4000)))
    refused = _GateProbe(pool_kept=False)
    assert joint._loud_run_set(refused, queries, [5], 200) is None and refused.spent == 1
    asked = _GateProbe(pool_kept=True)
    assert joint._loud_run_set(asked, queries, [5], 200) is None and asked.spent == 1 + loud_runs.QUERIES
    no_room = _GateProbe(pool_kept=True)
    assert joint._loud_run_set(no_room, queries, [5], loud_runs.QUERIES) is None and no_room.spent == 0


def test_scattered_key_partials_that_no_band_holds_are_the_sufficient_and_necessary_set(monkeypatch):
    """ScatteredKeyPartials: removing its six key partials flips the decision, removing any
    contiguous band does not, and a ranking that puts them last makes every prefix that holds
    most of the spectrum. The loud runs find them: the set is exactly the six partials, both claims
    re-queried on the model. Without the runs the set is a prefix shrunk from most of the spectrum."""
    clip = scattered_key_partials_clip()
    model = ScatteredKeyPartials(clip)
    worst = torch.ones(1, clip.shape[-1] // 2 + 1)
    worst[0, list(model.KEY)] = 0.0
    found = FreqReX(model).explain(clip, attributions=worst)[0]
    chosen = found.sufficient_necessary
    assert chosen.certified and chosen.mask.nonzero().squeeze(1).tolist() == list(model.KEY)
    assert chosen.certificate.shrink.exhaustive  # 1-minimal: every key partial is needed
    assert model(found.waveform("sufficient_necessary").unsqueeze(0)).argmax(1).item() == 0
    assert model(found.waveform("sufficient_necessary", removed=True).unsqueeze(0)).argmax(1).item() == 1

    monkeypatch.setattr(joint, "_loud_run_set", lambda *args: None)
    without = FreqReX(model).explain(clip, attributions=worst)[0].sufficient_necessary
    assert without.size >= 40 * chosen.size


def test_the_necessary_default_finds_scattered_key_partials_that_no_band_or_single_removal_flips():
    """ScatteredKeyPartials in mode="necessary": no band, core, single bin or union of the best
    single bins flips its decision, so band screening alone answers all zeros (and warns). The loud
    runs end it: a union of the runs holding the key partials flips it, shrunk while it still
    flips to the six partials themselves, each credited 1/6 and ranked first."""
    from captum_freqrex._core.search.band_screening import BandScreening

    clip = scattered_key_partials_clip()
    model = ScatteredKeyPartials(clip)
    explainer = FreqReX(model)
    values = explainer.attribute(clip, mode="necessary")[0]
    assert sorted(values.argsort(descending=True)[:6].tolist()) == list(model.KEY)
    assert torch.allclose(values[list(model.KEY)], torch.full((6,), 1 / 6))
    assert explainer.last_search[0].details["loud_run_flip"] == 6
    spectrum = torch.fft.rfft(clip[0])
    spectrum[list(model.KEY)] = 0
    assert model(torch.fft.irfft(spectrum, n=clip.shape[-1]).unsqueeze(0)).argmax(1).item() != 0

    without = FreqReX(model, search=BandScreening(loud_runs=False))
    with pytest.warns(UserWarning, match="every responsibility is 0"):
        assert not bool(without.attribute(clip, mode="necessary")[0].any())


def test_band_screening_refuses_a_loud_runs_flag_that_is_not_a_bool():
    from captum_freqrex._core.search.band_screening import BandScreening

    with pytest.raises(TypeError, match="loud_runs must be True or False"):
        BandScreening(loud_runs="yes")
