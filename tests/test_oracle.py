"""The one caller of the model (captum_freqrex._core.model.oracle.Oracle): every path goes through it.

FreqReX, the metrics, compare_methods and the benchmark's Captum runs all call the model through an
Oracle, so a model's own counter agrees with the oracles' QueryStats, a misbehaving model gets the
same error everywhere, chunking never changes a verdict, and time splits into model and overhead.
"""

from __future__ import annotations

import math
import re
import time

import pytest
import torch
from captum.attr import FeatureAblation, IntegratedGradients

from captum_freqrex import FreqReX, FrequencyForward
from captum_freqrex.compare import _scoring
from captum_freqrex.compare import compare_methods
from captum_freqrex._core.model import oracle as oracle_module
from captum_freqrex._core.model.decision import ArgmaxDecision, FunctionDecision, ThresholdDecision
from captum_freqrex._core.certify.prefix import LAZY_BATCH, PrefixSearch, probe_sizes
from captum_freqrex._core.records import ProbeResult
from captum_freqrex._core.spectral.space import FeatureSpace
from captum_freqrex._core.model.oracle import Oracle, row_slices
from captum_freqrex._core.records import QueryStats
from captum_freqrex.metrics import minimal_sufficient_prefix, perturbation_success_rate, sufficiency
from captum_freqrex.metrics._curves import _probe_sizes
from known_models import ToneDetector, bin_of, tone


@pytest.fixture
def oracles(monkeypatch):
    """Every Oracle built while the test runs, wherever it is built."""
    built = []
    init = Oracle.__init__

    def recording(self, *args, **kwargs):
        init(self, *args, **kwargs)
        built.append(self)

    monkeypatch.setattr(oracle_module.Oracle, "__init__", recording)
    return built


def _total(oracles) -> QueryStats:
    total = QueryStats()
    for built in oracles:
        total = total + built.stats
    return total


def test_freqrex_counts_are_the_models_own(detector, tone_clip, oracles):
    explainer = FreqReX(detector)
    explainer.explain(tone_clip, perturbations_per_eval=16)
    stats = explainer.last_stats
    assert (stats.queries, stats.forward_calls) == (detector.rows, detector.calls) and detector.calls > 1
    assert len(oracles) == 1 and oracles[0].stats.queries == detector.rows


def test_metric_calls_all_go_through_an_oracle(detector, tone_clip, oracles):
    attributions = FreqReX(detector).attribute(tone_clip)
    detector.rows = detector.calls = 0
    oracles.clear()
    perturbation_success_rate(detector, tone_clip, attributions, k=[0, 1, 3], max_examples_per_batch=2)
    total = _total(oracles)
    assert len(oracles) == 1
    assert (total.queries, total.forward_calls) == (detector.rows, detector.calls) == (1 + 3, 1 + 2)


def test_compare_counts_come_from_the_oracles(tone_clip, oracles, monkeypatch):
    detector = ToneDetector([440], threshold=0.5)
    clips = tone_clip.repeat(2, 1)
    table = compare_methods(detector, clips, methods=["FreqReX", "FeatureAblation"], max_perturbation_features=64)
    total = _total(oracles)
    # Everything: the set-up, both methods and every metric.
    assert (total.queries, total.forward_calls) == (detector.rows, detector.calls)
    # The cost columns alone: with the metrics skipped, the model sees the set-up (one row per
    # clip) and the methods' queries, which the table reports per clip.
    monkeypatch.setattr(_scoring, "_score", lambda *args, **kwargs: {})
    detector.rows = detector.calls = 0
    table = compare_methods(detector, clips, methods=["FreqReX", "FeatureAblation"], max_perturbation_features=64)
    per_clip = sum(table.row(m)["queries"] for m in ("FreqReX", "FeatureAblation"))
    assert detector.rows == clips.shape[0] + per_clip * clips.shape[0]
    for method in ("FreqReX", "FeatureAblation"):
        row = table.row(method)
        assert row["error"] is None and row["queries"] > 0
        assert 0 < row["model_s"] <= row["wall_s"]
        assert row["overhead_s"] == pytest.approx(row["wall_s"] - row["model_s"])


class _Bad(torch.nn.Module):
    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind

    def forward(self, x):
        scores = torch.stack([x[:, 0] * 0 + 1.0, x[:, 0] * 0], 1)
        if self.kind == "nan":
            return scores * float("nan")
        if self.kind == "dict":
            return {"scores": scores, "hidden": scores}
        return scores > 0.5  # bool


@pytest.mark.parametrize(
    "kind, error, message",
    [
        ("nan", ValueError, "NaN or Inf"),
        ("dict", TypeError, r"dict with keys \['scores', 'hidden'\] and no 'logits'"),
        ("bool", TypeError, "torch.bool scores"),
    ],
)
def test_a_misbehaving_model_gets_one_error_everywhere(tone_clip, kind, error, message):
    model = _Bad(kind)
    keep = torch.zeros(1, tone_clip.shape[-1] // 2 + 1, dtype=torch.bool)
    calls = [
        lambda: FreqReX(model).attribute(tone_clip),
        lambda: sufficiency(model, tone_clip, keep),
        lambda: perturbation_success_rate(model, tone_clip, keep.double()),
        lambda: compare_methods(model, tone_clip, methods=["FreqReX"], strict=True),
        lambda: Oracle(model).scores([tone_clip]),
    ]
    messages = set()
    for call in calls:
        with pytest.raises(error, match=message) as raised:
            call()
        messages.add(re.sub(r"\d+", "N", str(raised.value)))  # the same error; how many rows a call had aside
    assert len(messages) == 1, messages


def test_a_width_that_changes_is_refused(tone_clip):
    widths = iter([2, 3])
    oracle = Oracle(lambda x: torch.zeros(x.shape[0], next(widths)))
    oracle.scores([tone_clip])
    with pytest.raises(ValueError, match="fixed width"):
        oracle.scores([tone_clip])


def test_chunking_by_the_batch_bound_gives_the_verdicts_of_one_call(tone_clip):
    detector = ToneDetector([440, 1000], threshold=0.7)
    space = FeatureSpace((tone_clip,), (torch.zeros_like(tone_clip),), None)
    g = torch.Generator().manual_seed(0)
    masks = (torch.rand(23, space.n_features, generator=g) < 0.5).double()
    masks[:5, bin_of(440, tone_clip.shape[-1])] = 1.0  # some rows keep the decisive bins
    masks[:5, bin_of(1000, tone_clip.shape[-1])] = 1.0
    results = {}
    for max_rows in (1, 4, 23, 100):
        oracle = Oracle(detector, max_rows=max_rows)
        original = oracle.scores([tone_clip])
        oracle.decide(None, original)
        scores = oracle.keep_scores(space, 0, masks.shape[0], lambda lo, hi: masks[lo:hi])
        assert oracle.stats.forward_calls == 1 + math.ceil(23 / max_rows)
        assert oracle.stats.queries == 1 + 23
        results[max_rows] = (scores, oracle.verdicts(scores, 1))
    scores, verdicts = results[100]
    assert verdicts.passes.any() and not verdicts.passes.all()
    for other_scores, other in results.values():
        torch.testing.assert_close(other_scores, scores)
        for field in ("decided", "passes", "changes"):
            assert torch.equal(getattr(other, field), getattr(verdicts, field))


def test_row_slices_cover_every_row_once_in_order():
    slices = list(row_slices(23, 4))
    assert slices[0] == (0, 4) and slices[-1] == (20, 23)
    assert [i for lo, hi in slices for i in range(lo, hi)] == list(range(23))
    assert list(row_slices(0, 4)) == []
    with pytest.raises(ValueError, match="max_rows"):
        list(row_slices(3, 0))


def test_metric_chunking_gives_the_verdicts_of_one_call(detector, tone_clip):
    attributions = FreqReX(detector).attribute(tone_clip)
    clips = torch.cat([tone_clip, 0.2 * tone_clip])
    attributions = attributions.repeat(2, 1)
    one = perturbation_success_rate(detector, clips, attributions, k=[0, 1, 2, 5])
    chunked = perturbation_success_rate(detector, clips, attributions, k=[0, 1, 2, 5], max_examples_per_batch=3)
    assert torch.equal(one.flipped, chunked.flipped) and one.flipped.any()
    torch.testing.assert_close(one.confidence, chunked.confidence)


def test_extra_arguments_are_sliced_to_the_rows_examples():
    seen = []

    def model(x, gain):
        seen.append(gain.clone())
        return torch.stack([x.sum(1) * gain, -x.sum(1) * gain], 1)

    x = torch.ones(3, 8)
    gains = torch.tensor([1.0, 2.0, 3.0])
    oracle = Oracle(model, additional_forward_args=(gains,), batch_size=3, max_rows=4)
    oracle.scores([x[:2]], 2)  # one example: its argument, repeated per row
    oracle.scores([x[:2]], torch.tensor([0, 2]))  # one example per row
    oracle.scores([x], None)  # as given
    assert [s.tolist() for s in seen] == [[3.0, 3.0], [1.0, 3.0], [1.0, 2.0, 3.0]]


def test_stats_split_model_time_from_overhead(tone_clip):
    detector = ToneDetector([440], threshold=0.5)

    def slow(x):
        time.sleep(0.005)
        return detector(x)

    explainer = FreqReX(slow)
    explanations = explainer.explain(tone_clip, perturbations_per_eval=64)
    stats = explainer.last_stats
    assert stats.model_seconds >= 0.005 * stats.forward_calls
    assert stats.total_seconds >= stats.model_seconds
    assert stats.overhead_seconds == pytest.approx(stats.total_seconds - stats.model_seconds)
    # The call's total covers its set-up too, beyond the example's own time.
    assert stats.total_seconds >= explanations[0].stats.total_seconds
    assert explanations[0].stats.queries == stats.queries

    oracle = Oracle(slow)
    with oracle.measure():
        oracle.scores([tone_clip])
        time.sleep(0.02)  # overhead: outside the model
    assert oracle.stats.model_seconds >= 0.005
    assert oracle.stats.overhead_seconds >= 0.02


def test_captum_methods_call_the_oracle_with_gradients(detector, tone_clip):
    oracle = Oracle(detector)
    wrapped = FrequencyForward(oracle, tone_clip)
    with torch.enable_grad():
        attr = IntegratedGradients(wrapped).attribute(wrapped.ones(), baselines=wrapped.zeros(), target=1, n_steps=8)
    assert attr.abs().sum() > 0  # the graph survived the oracle
    assert oracle.stats.queries == wrapped.queries == detector.rows
    assert oracle.stats.forward_calls == wrapped.calls == detector.calls

    nan = Oracle(_Bad("nan"))
    wrapped = FrequencyForward(nan, tone_clip)
    with pytest.raises(ValueError, match="NaN or Inf"):
        FeatureAblation(wrapped).attribute(wrapped.ones(), baselines=wrapped.zeros(), target=0)


def test_verdicts_mark_ties_as_neither_keep_nor_change():
    oracle = Oracle(lambda x: x)
    scores = torch.tensor([[2.0, 0.0], [0.0, 0.0], [0.0, 2.0]])
    oracle.decide(ArgmaxDecision(scores="logits"), scores[:1])
    verdicts = oracle.verdicts(scores, 0)
    assert verdicts.passes.tolist() == [True, False, False]
    assert verdicts.changes.tolist() == [False, False, True]
    assert verdicts.margin[1] == 0 and verdicts.margin[0] > 0 > verdicts.margin[2]
    probes = verdicts.probes()
    assert [p.tied for p in probes] == [False, True, False]
    with pytest.raises(RuntimeError, match="decide"):
        Oracle(lambda x: x).verdicts(scores, 0)


def test_one_prefix_grid_serves_extraction_and_metrics():
    for lo, hi in [(-1, 240002), (0, 9), (5, 2000), (100, 130), (7, 8)]:
        sizes = probe_sizes(lo, hi, 8)
        assert all(lo < k < hi for k in sizes) and len(sizes) <= 8
        assert (sizes == []) == (hi - lo <= 1)
        # The metric's search probes the same grid, plus the baseline and the top feature while
        # nothing below is known.
        extra = [k for k in (0, 1) if lo < 0 or (lo == 0 and k == 1)]
        assert _probe_sizes(lo, hi, 8) == sorted(set(sizes + [k for k in extra if k < hi]))
    wide = probe_sizes(1, 100000, 8)
    assert wide[1] / wide[0] > 2  # geometric while wide
    narrow = probe_sizes(100, 110, 4)
    assert narrow == [102, 104, 106, 108]  # even once narrow


def test_both_prefix_searches_find_the_known_threshold():
    # Sufficiency is monotone along this ranking with threshold k = 37: both searches must find it.
    n = 5001  # bins of a 10,000-sample clip

    def query(keep, remove):
        return [ProbeResult(k >= 37, 1 if k >= 37 else 0, 0.9 if k >= 37 else 0.1) for k in keep], [
            ProbeResult(k < 37, 1 if k < 37 else 0, 0.5) for k in remove
        ]

    original = ProbeResult(True, 1, 0.9)
    sufficient, *_ = PrefixSearch(query, n, original, 0.85, 64, ProbeResult(False, 0, 0.1)).run()
    assert sufficient == 37

    class Threshold(torch.nn.Module):
        def forward(self, x):  # class 1 when bins 1..37 are all kept (each carries energy)
            spectrum = torch.fft.rfft(x).abs()
            kept = (spectrum[:, 1:38] > 1e-3).all(1).double()
            return torch.stack([1 - kept, kept], 1)

    x = torch.zeros(1, 2 * (n - 1))
    t = torch.arange(x.shape[1]) / x.shape[1]
    for b in range(1, 38):
        x[0] += torch.cos(2 * torch.pi * b * t)
    ranking_scores = torch.zeros(1, n)
    ranking_scores[0, 1:38] = torch.linspace(2.0, 1.0, 37)
    result = minimal_sufficient_prefix(Threshold(), x, ranking_scores, max_scan_features=0)
    assert int(result.size) == 37 and bool(result.monotone) and int(result.queries) < 64


def test_the_sufficient_prefix_alone_is_searched_smallest_size_first():
    """With the sufficient size searched alone (the joint search does the others), each round's
    sizes are asked in ascending chunks until one passes: the same size and bracket as asking
    them all, for fewer queries, and no chunk goes past the first that holds a pass."""
    n, threshold, asked = 5001, 37, []

    def query(keep, remove):
        asked.append(list(keep))
        kept = [ProbeResult(k >= threshold, int(k >= threshold), 0.9 if k >= threshold else 0.1) for k in keep]
        return kept, [ProbeResult(k < threshold, int(k < threshold), 0.5) for k in remove]

    original, baseline = ProbeResult(True, 1, 0.9), ProbeResult(False, 0, 0.1)
    lazy = PrefixSearch(query, n, original, 0.85, 64, baseline, sufficient_only=True)
    size, _, _, exact = lazy.run()
    calls = list(asked)
    eager = PrefixSearch(query, n, original, 0.85, 64, baseline)  # three brackets: every size asked
    assert size == threshold == eager.run()[0] and exact["sufficient"]
    assert lazy.queries < lazy.charged and all(len(call) <= LAZY_BATCH for call in calls)
    for call, after in zip(calls, calls[1:]):
        passing = [k for k in call if k >= threshold]
        if passing:  # the next call is the next round's, inside the closed-in bracket
            assert max(after) < min(passing)


def test_a_per_example_argument_with_a_row_too_many_or_few_is_refused(classifier):
    calls = []

    def model(x, extra):
        calls.append(extra.shape)
        return classifier(x)

    x = torch.stack([tone(440), tone(1000)])
    for rows in (3, 1):
        with pytest.raises(ValueError, match=f"additional_forward_args\\[0\\] has {rows} rows for a batch of 2"):
            FreqReX(model).attribute(x, additional_forward_args=(torch.ones(rows, 4),), max_queries=100)
    assert not calls
    # One row per example is sliced per example; another length passes whole (a constant).
    FreqReX(model).attribute(x, additional_forward_args=(torch.ones(2, 4),), max_queries=100)
    assert calls and all(shape[1:] == (4,) for shape in calls)
    FreqReX(model).attribute(x, additional_forward_args=(torch.ones(7, 4),), max_queries=100)
    assert calls[-1] == (7, 4)


def test_a_target_on_the_meta_device_is_refused_with_the_fix(classifier):
    x = torch.stack([tone(440), tone(1000)])
    for target in (torch.tensor([0, 1], device="meta"), [torch.tensor(0, device="meta"), 1]):
        with pytest.raises(ValueError, match="target is a tensor on the meta device, which holds no values"):
            FreqReX(classifier).attribute(x, target=target, max_queries=100)


def test_notes_on_a_models_error_are_kept_without_add_note():
    """Python 3.10 has no BaseException.add_note: the notes FreqReX adds to a model's error still
    land in ``__notes__`` (3.11 prints them with the traceback, and the command line reads them)."""
    from captum_freqrex._core.model.oracle import mark_raised_by_model, raised_by_model

    class OldError(Exception):
        add_note = None  # as on Python 3.10

    error = OldError("the model's own message")
    mark_raised_by_model(error, "first")
    mark_raised_by_model(error, "second")
    assert error.__notes__ == ["first", "second"] and str(error) == "the model's own message"
    assert raised_by_model(error)


@pytest.mark.parametrize(
    "decision, width",
    [
        (ArgmaxDecision("logits"), 4),
        (ArgmaxDecision("probabilities"), 4),
        (ThresholdDecision(0.3, "logits"), 1),
        (ThresholdDecision(0.6, "probabilities"), 1),
        (FunctionDecision(lambda outputs, target: outputs.argmax(1) == target), 4),
    ],
)
def test_one_reading_gives_the_verdicts_of_each_method(decision, width):
    # Decision.read reads the scores once (the built-in decisions override it); every field must
    # be bit for bit what the separate methods say, ties at the tolerance included.
    torch.manual_seed(0)
    as_probabilities = getattr(decision, "scores", "logits") == "probabilities"
    outputs = torch.randn(64, width)
    if width > 1:
        outputs[:8, :2] = 3.0  # exact ties between classes 0 and 1: neither passes nor changes
        outputs = outputs.softmax(1) if as_probabilities else outputs
    else:
        outputs = outputs.sigmoid() if as_probabilities else outputs
        outputs[:8] = decision.threshold if as_probabilities else math.log(decision.threshold / (1 - decision.threshold))
    target = torch.randint(0, max(width, 2), (64,))
    reading = decision.read(outputs, target)
    margin_of = getattr(decision, "margin", None)
    expected_margin = margin_of(outputs, target).double() if margin_of else torch.full((64,), math.nan, dtype=torch.float64)
    decided = decision.classes(outputs).long()
    assert torch.equal(reading.decided, decided)
    assert torch.equal(reading.confidence, decision.confidence(outputs, target).double())
    assert torch.equal(reading.decided_confidence, decision.confidence(outputs, decided).double())
    assert torch.equal(reading.passes, decision.passes(outputs, target).bool())
    assert torch.equal(reading.changes, decision.changes(outputs, target).bool())
    assert torch.equal(reading.margin, expected_margin) or (margin_of is None and bool(reading.margin.isnan().all()))
    assert not (reading.passes & reading.changes).any()
