"""transferability: sufficient signals of one model fed to others, with known-answer tone models."""

import math

import pytest
import torch

from captum_freqrex import FreqReX
from captum_freqrex.metrics import TransferResult, transferability
from known_models import ToneClassifier, ToneDetector, tone

NAMES = ("440 Hz", "1000 Hz", "none")


def clips() -> torch.Tensor:
    """Five 1 s clips at 8 kHz: three led by 440 Hz, two by 1000 Hz, each with a 2500 Hz tone."""
    rows = [
        tone(440, amplitude=0.8) + 0.3 * tone(1000) + 0.5 * tone(2500),
        tone(440, amplitude=0.6) + 0.4 * tone(2500),
        tone(440, amplitude=0.9) + 0.2 * tone(1000) + 0.7 * tone(2500),
        tone(1000, amplitude=0.7) + 0.2 * tone(440) + 0.5 * tone(2500),
        tone(1000, amplitude=0.5) + 0.6 * tone(2500),
    ]
    return torch.stack(rows)


def signals() -> torch.Tensor:
    """What each clip's sufficient set keeps for a model keyed on 440 / 1000 Hz: its leading tone."""
    return torch.stack([tone(440, amplitude=0.8), tone(440, amplitude=0.6), tone(440, amplitude=0.9),
                        tone(1000, amplitude=0.7), tone(1000, amplitude=0.5)])


DECISIONS = [0, 0, 0, 1, 1]


class Tied(torch.nn.Module):
    """Scores classes 0 and 1 the same (their summed tone magnitudes): every decision is a tie."""

    def __init__(self) -> None:
        super().__init__()
        self.tones = ToneClassifier([440, 1000])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scores = self.tones(x)
        both = scores[:, :2].sum(1, keepdim=True)
        return torch.cat([both, both, torch.zeros_like(both)], dim=1)


def test_same_tones_accept_every_signal_other_tones_none():
    models = {
        "same": ToneClassifier([440, 1000], floor=0.02),  # keyed on the same tones, built differently
        "other": ToneClassifier([2500, 3000]),  # keyed on other frequencies
    }
    result = transferability(signals(), DECISIONS, models, originals=clips(), class_names=NAMES)
    assert isinstance(result, TransferResult)
    assert result.model_names == ("same", "other") and result.class_names == NAMES
    assert result.accepted.shape == (2, 5) and result.accepted[0].all() and not result.accepted[1].any()
    assert result.counts.tolist() == [3, 2, 0]
    torch.testing.assert_close(result.rates[:, :2], torch.tensor([[1.0, 1.0], [0.0, 0.0]], dtype=torch.float64))
    assert math.isnan(result.rates[0, 2])  # no clip was decided "none"
    assert result.overall.tolist() == [1.0, 0.0]
    assert result.to_tensor() is result.accepted  # the per-clip tensor, as captum.metrics returns one
    # The model keyed on 2500 / 3000 Hz decides its class 0 (2500 Hz) on every full clip, so it
    # "agrees" with the source's class-0 clips by index, yet accepts none of their signals, which
    # hold no 2500 Hz.
    assert result.agrees is not None
    assert result.agrees[0].all()
    assert result.agrees[1].tolist() == [True, True, True, False, False]
    assert (result.decided[1] == 2).all()  # "none": no 2500 or 3000 Hz in any signal
    assert result.accepted_where_agree_counts is not None
    assert result.accepted_where_agree_counts[1].sum() == 0


def test_full_clip_agreement_is_counted_apart_from_transfer():
    """A model that agrees on every full clip but is keyed elsewhere accepts no signal."""
    # Classes (2500 Hz, 3000 Hz, none) against sources decided as class 0: its full-clip decision is
    # class 0 (2500 Hz leads among its tones) on every clip, the signals hold no 2500 Hz.
    result = transferability(signals()[:3], [0, 0, 0], {"elsewhere": ToneClassifier([2500, 3000])},
                             originals=clips()[:3], class_names=NAMES)
    assert result.agrees is not None and result.agrees.all()
    assert not result.accepted.any()
    assert result.agree_counts is not None and result.agree_counts.tolist() == [[3, 0, 0]]
    rows = result.rows()
    assert rows[0] == {"model": "elsewhere", "class": "440 Hz", "clips": 3, "accepted": 0, "rate": 0.0,
                       "full_clip_agrees": 3, "accepted_where_full_agrees": 0}
    assert rows[-1]["class"] == "all" and rows[-1]["clips"] == 3


def test_ties_never_count_as_acceptance():
    result = transferability(signals(), DECISIONS, {"tied": Tied()}, originals=clips(), class_names=NAMES)
    assert not result.accepted.any() and result.agrees is not None and not result.agrees.any()
    assert result.overall.item() == 0.0


def test_explanations_on_the_source_are_accepted_by_the_source_and_same_tone_models():
    source = ToneClassifier([440, 1000])
    explanations = FreqReX(source).explain(clips(), seed=0, max_queries=300)
    assert all(e.sufficient is not None and e.sufficient.certified for e in explanations)
    assert [e.target for e in explanations] == DECISIONS
    models = {"source": source, "same": ToneClassifier([440, 1000], floor=0.02), "other": ToneClassifier([2500, 3000])}
    result = transferability(explanations, None, models, class_names=NAMES)
    assert result.accepted[0].all()  # certified on the source: the sanity row
    assert result.accepted[1].all()
    assert not result.accepted[2].any()
    assert result.agrees is not None and result.agrees[0].all()  # the resynthesised full clips
    table = result.to_markdown()
    assert "| source: signal | 1.00 (3/3) | 1.00 (2/2) | - | 1.00 (5/5) |" in table
    assert "| other: signal | 0.00 (0/3) | 0.00 (0/2) | - | 0.00 (0/5) |" in table
    assert "other: signal, where full clip agrees" in table
    assert table.splitlines()[0] == "| target model | 440 Hz (n=3) | 1000 Hz (n=2) | none (n=0) | all (n=5) |"


def test_labels_group_clips_and_names_are_accepted():
    # Count the clips under "true labels" that differ from the decisions: clip 4 labelled 440 Hz.
    result = transferability(signals(), ["440 Hz"] * 3 + ["1000 Hz"] * 2, {"same": ToneClassifier([440, 1000])},
                             class_names=NAMES, labels=[0, 0, 0, 1, 0])
    assert result.counts.tolist() == [4, 1, 0]
    assert result.decisions.tolist() == DECISIONS
    assert result.accepted_counts.tolist() == [[4, 1, 0]]
    assert result.agrees is None and result.agree_counts is None
    assert "full clip" not in result.to_markdown()


def test_batch_bound_does_not_change_the_result_and_bounds_each_call():
    seen = []

    class Recording(ToneClassifier):
        def forward(self, x):
            seen.append(x.shape[0])
            return super().forward(x)

    models = {"same": Recording([440, 1000]), "other": Recording([2500, 3000])}
    results = [transferability(signals(), DECISIONS, models, originals=clips(), max_examples_per_batch=b) for b in (1, 2, None)]
    assert max(seen[: 4 * 5]) == 1 and len(seen[: 4 * 5]) == 20  # 2 models x (signals, clips) x 5 rows
    for result in results[1:]:
        assert torch.equal(result.accepted, results[0].accepted)
        assert torch.equal(result.decided, results[0].decided)
        assert result.agrees is not None and results[0].agrees is not None
        assert torch.equal(result.agrees, results[0].agrees)
    assert seen[20:32] == [2, 2, 1] * 4 and seen[32:] == [5] * 4  # bound 2, then one call per pass


def test_a_model_that_edits_its_input_leaves_the_callers_tensors_alone():
    class Zeroing(ToneClassifier):
        def forward(self, x):
            out = super().forward(x)
            x.zero_()
            return out

    waves, full = signals(), clips()
    before, full_before = waves.clone(), full.clone()
    result = transferability(waves, DECISIONS, {"z": Zeroing([440, 1000])}, originals=full)
    assert result.accepted.all()
    assert torch.equal(waves, before) and torch.equal(full, full_before)


def test_sequence_of_per_clip_signals():
    per_clip = list(signals())
    result = transferability(per_clip, torch.tensor(DECISIONS), {"same": ToneClassifier([440, 1000])})
    assert result.accepted.all() and result.class_names == ("0", "1", "2")


def test_bad_inputs_raise_clear_errors():
    same = {"same": ToneClassifier([440, 1000])}
    with pytest.raises(ValueError, match="decisions has 4 entries for 5 signals"):
        transferability(signals(), DECISIONS[:4], same)
    with pytest.raises(ValueError, match="labels has 2 entries for 5 signals"):
        transferability(signals(), DECISIONS, same, labels=[0, 1])
    with pytest.raises(ValueError, match="originals must be shaped like the signals"):
        transferability(signals(), DECISIONS, same, originals=clips()[:4])
    with pytest.raises(ValueError, match=r"unknown class 'snare' in decisions; class_names are \['440 Hz'"):
        transferability(signals(), ["snare"] * 5, same, class_names=NAMES)
    with pytest.raises(ValueError, match="pass class_names="):
        transferability(signals(), ["440 Hz"] * 5, same)
    with pytest.raises(ValueError, match=r"unknown class 3 in decisions: class indices must be in \[0, 3\)"):
        transferability(signals(), [0, 0, 0, 1, 3], same, class_names=NAMES)
    with pytest.raises(ValueError, match="unknown class 7: models\\['same'\\] has 3 classes"):
        transferability(signals(), [0, 0, 0, 1, 7], same)
    with pytest.raises(ValueError, match="has 3 classes but class_names names 2"):
        transferability(signals(), DECISIONS, same, class_names=["a", "b"])
    with pytest.raises(ValueError, match="has 4 classes, the others 3"):
        transferability(signals(), DECISIONS, {**same, "wider": ToneClassifier([440, 1000, 2500])})
    with pytest.raises(TypeError, match="class indices"):
        transferability(signals(), [True] * 5, same)
    with pytest.raises(TypeError, match="integer tensor"):
        transferability(signals(), torch.zeros(5), same)
    with pytest.raises(ValueError, match="non-empty mapping"):
        transferability(signals(), DECISIONS, {})
    with pytest.raises(TypeError, match=r"models\['x'\] must be callable"):
        transferability(signals(), DECISIONS, {"x": 3})
    with pytest.raises(ValueError, match="one shape"):
        transferability([tone(440), tone(440, seconds=0.5)], [0, 0], same)
    with pytest.raises(ValueError, match="decisions is None"):
        transferability(signals(), None, same)
    with pytest.raises(ValueError, match="max_examples_per_batch"):
        transferability(signals(), DECISIONS, same, max_examples_per_batch=0)
    with pytest.raises(ValueError, match="unsqueeze"):
        transferability(tone(440), [0], same)


def test_explanations_without_a_certified_set_are_refused():
    source = ToneClassifier([440, 1000])
    explanations = FreqReX(source).explain(clips()[:2], seed=0, max_queries=200)
    with pytest.raises(ValueError, match="decisions come from the explanations"):
        transferability(explanations, DECISIONS[:2], {"s": source})
    with pytest.raises(ValueError, match="which must be one of"):
        transferability(explanations, None, {"s": source}, which="best")
    explanations[1].sufficient = None
    with pytest.raises(ValueError, match="explanation 1 has no sufficient set.*e.sufficient.certified"):
        transferability(explanations, None, {"s": source})


def test_each_target_is_called_through_one_oracle_whose_counts_are_its_own(monkeypatch):
    from captum_freqrex._core.model import oracle as oracle_module

    built = []
    init = oracle_module.Oracle.__init__

    def recording(self, *args, **kwargs):
        init(self, *args, **kwargs)
        built.append(self)

    monkeypatch.setattr(oracle_module.Oracle, "__init__", recording)
    same, other = ToneDetector([440], threshold=0.1), ToneDetector([2500], threshold=0.1)
    result = transferability(signals(), [1] * 5, {"same": same, "other": other}, originals=clips(),
                             max_examples_per_batch=2)
    assert [o.forward_func for o in built] == [same, other]  # one oracle per target model
    for oracle, model in zip(built, (same, other)):
        assert (oracle.stats.queries, oracle.stats.forward_calls) == (model.rows, model.calls) == (10, 6)
        assert oracle.decision is not None  # the verdicts are the oracle's
    # The 440 Hz detector accepts the three 440 Hz signals; the 2500 Hz one none (its tone is only
    # in the full clips, which it decides as class 1 on every clip).
    assert result.accepted.tolist() == [[True] * 3 + [False] * 2, [False] * 5]
    assert result.agrees is not None and result.agrees[1].all()
    assert result.full_decided is not None and result.full_decided.tolist() == [[1, 1, 1, 1, 0], [1] * 5]
