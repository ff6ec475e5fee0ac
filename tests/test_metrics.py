"""captum_freqrex.metrics: hand-computed answers on models whose causal frequencies are known."""

import math

import pytest
import torch
from torch import nn

from captum_freqrex import ArgmaxDecision, linear_bands
from captum_freqrex.metrics import (
    deletion_curve,
    explanation_size,
    insertion_curve,
    minimal_sufficient_prefix,
    necessity,
    perturbation_success_rate,
    snr_db,
    sufficiency,
)
from known_models import SAMPLE_RATE, ToneClassifier, ToneDetector, tone

F = SAMPLE_RATE // 2 + 1  # 1 s at 8 kHz: one bin per Hz


def one_hot(*bins: int, batch: int = 1) -> torch.Tensor:
    mask = torch.zeros(batch, F, dtype=torch.bool)
    mask[:, list(bins)] = True
    return mask


def ranking(*bins: int, batch: int = 1) -> torch.Tensor:
    """Attributions ranking ``bins`` first, in order; every other bin ties at 0 (louder first)."""
    attr = torch.zeros(batch, F)
    for i, b in enumerate(bins):
        attr[:, b] = len(bins) - i
    return attr


@pytest.fixture
def two_tones() -> torch.Tensor:
    """440 Hz and 1 kHz, amplitude 1 each: power 0.5 + 0.5 per sample."""
    return (tone(440) + tone(1000)).unsqueeze(0)


@pytest.fixture
def louder_440() -> torch.Tensor:
    """440 Hz (amplitude 1) over 1 kHz (0.8): ToneClassifier decides class 0."""
    return (tone(440) + 0.8 * tone(1000)).unsqueeze(0)


# ---------------------------------------------------------------- sufficiency and necessity


def test_the_decisive_tone_is_sufficient_and_necessary(two_tones):
    detector = ToneDetector([440], threshold=0.5)
    suff = sufficiency(detector, two_tones, one_hot(440))
    nec = necessity(detector, two_tones, one_hot(440))
    assert suff.sufficient.tolist() == [True] and nec.necessary.tolist() == [True]
    # |X_440| normalised = 1 -> margin 10 * (1 - 0.5) = 5 -> softmax([-5, 5])[1] = sigmoid(10)
    expected = 1 / (1 + math.exp(-10))
    assert suff.confidence.item() == pytest.approx(expected, abs=1e-5)
    assert suff.original_confidence.item() == pytest.approx(expected, abs=1e-5)
    assert nec.confidence.item() == pytest.approx(1 - expected, abs=1e-5)
    assert nec.decided.tolist() == [0] and suff.decided.tolist() == [1] and suff.target.tolist() == [1]


def test_a_distractor_is_neither_sufficient_nor_necessary(two_tones):
    detector = ToneDetector([440], threshold=0.5)
    assert not sufficiency(detector, two_tones, one_hot(1000)).sufficient.item()
    assert not necessity(detector, two_tones, one_hot(1000)).necessary.item()
    # a feature grid without batch dimension applies to every example
    assert sufficiency(detector, two_tones, one_hot(440)[0]).sufficient.item()


def test_every_result_converts_to_its_per_example_tensor(two_tones):
    """As captum.metrics' infidelity and sensitivity_max return a (B,) tensor, each result's
    to_tensor() is its per-example value: the tone's bin is sufficient, necessary, flips at k = 1
    and is the first sufficient prefix; the distractor (second example's set) is none of these."""
    detector = ToneDetector([440], threshold=0.5)
    clips = torch.cat([two_tones, two_tones])
    sets = torch.cat([one_hot(440), one_hot(1000, 2000)])
    attr = torch.cat([ranking(440), ranking(1000)])
    results = {
        "sufficient": sufficiency(detector, clips, sets),
        "necessary": necessity(detector, clips, sets),
        "flipped": perturbation_success_rate(detector, clips, attr, k=1),
        "size": minimal_sufficient_prefix(detector, clips, attr, max_scan_features=0),
        "auc": deletion_curve(detector, clips, attr, n_steps=4),
        "features": explanation_size(clips, sets),
    }
    for field, result in results.items():
        value = result.to_tensor()
        assert isinstance(value, torch.Tensor) and value is getattr(result, field) and value.shape == (2,), field
    assert results["sufficient"].to_tensor().tolist() == [True, False]
    assert results["necessary"].to_tensor().tolist() == [True, False]
    assert results["flipped"].to_tensor().float().mean().item() == results["flipped"].success_rate.item() == 0.5
    assert results["size"].to_tensor()[0].item() == 1 and results["features"].to_tensor().tolist() == [1, 2]
    curve = results["auc"]
    torch.testing.assert_close(curve.to_tensor(), torch.trapezoid(curve.confidence, curve.fractions))
    assert perturbation_success_rate(detector, clips, attr, k=[1, 5]).to_tensor().shape == (2, 2)


def test_targets_int_list_and_tensor(louder_440):
    classifier = ToneClassifier([440, 1000, 2500])
    clips = torch.cat([louder_440, louder_440])
    only_1000 = one_hot(1000, batch=2)
    # the model decides 440 Hz (class 0), so 1 kHz alone is not sufficient
    assert sufficiency(classifier, clips, only_1000).sufficient.tolist() == [False, False]
    # ... but it is sufficient for the decision "1 kHz" (class 1)
    assert sufficiency(classifier, clips, only_1000, target=1).sufficient.tolist() == [True, True]
    assert sufficiency(classifier, clips, only_1000, target=[0, 1]).sufficient.tolist() == [False, True]
    result = sufficiency(classifier, clips, only_1000, target=torch.tensor([1, 0]))
    assert result.sufficient.tolist() == [True, False] and result.target.tolist() == [1, 0]
    with pytest.raises(ValueError, match="out of range"):
        sufficiency(classifier, clips, only_1000, target=7)
    with pytest.raises(ValueError, match="one entry per example"):
        sufficiency(classifier, clips, only_1000, target=[0, 1, 2])


def test_a_set_of_bands_is_made_of_whole_features(two_tones):
    detector = ToneDetector([440], threshold=0.5)
    bands = linear_bands(SAMPLE_RATE, 40, sample_rate=SAMPLE_RATE)  # 100 Hz bands
    # one bin of the 400-500 Hz band brings in the whole band, 440 Hz included
    assert sufficiency(detector, two_tones, one_hot(401), feature_mask=bands).sufficient.item()
    assert not sufficiency(detector, two_tones, one_hot(401)).sufficient.item()
    size = explanation_size(two_tones, one_hot(401), feature_mask=bands)
    assert size.features.item() == 1
    assert size.bin_share.item() == pytest.approx(100 / F)
    assert size.energy_share.item() == pytest.approx(0.5, abs=1e-4)


def test_shapes_are_checked(two_tones):
    detector = ToneDetector([440], threshold=0.5)
    with pytest.raises(ValueError, match="feature grid"):
        sufficiency(detector, two_tones, torch.ones(1, 10, dtype=torch.bool))
    with pytest.raises(ValueError, match="must match inputs"):
        sufficiency(detector, two_tones, (one_hot(440), one_hot(440)))
    with pytest.raises(ValueError, match="max_examples_per_batch"):
        sufficiency(detector, two_tones, one_hot(440), max_examples_per_batch=0)
    nan_scores = one_hot(440).double()
    nan_scores[0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN or Inf, which cannot be ranked"):
        perturbation_success_rate(detector, two_tones, nan_scores, k=[1])


# ---------------------------------------------------------------- perturbation success rate and SNR


def test_removing_the_tone_bin_flips_with_a_hand_computed_snr(two_tones):
    detector = ToneDetector([440], threshold=0.5)
    result = perturbation_success_rate(detector, two_tones, ranking(440), k=[1, 5])
    assert result.flipped.tolist() == [[True, True]]
    assert result.success_rate.tolist() == [1.0, 1.0] and result.k.tolist() == [1, 5]
    # k = 1: noise = the removed 440 Hz sine (power 1/2), signal power 1/2 + 1/2: 10 log10(2) dB;
    # k = 5: the zero-score tie ranks the loudest bin (1 kHz) next, so everything is removed: 0 dB
    assert result.snr_db[0].tolist() == pytest.approx([10 * math.log10(2), 0.0], abs=1e-3)
    # an int k drops the k dimension
    single = perturbation_success_rate(detector, two_tones, ranking(440), k=1)
    assert single.flipped.shape == (1,) and single.success_rate.shape == () and single.k.item() == 1


def test_scaling_instead_of_removing(two_tones):
    detector = ToneDetector([440], threshold=0.5)
    # amplitude 1 -> 0.4 falls below the 0.5 threshold; noise = 0.6 sine, power 0.18
    scaled = perturbation_success_rate(detector, two_tones, ranking(440), k=1, factor=0.4)
    assert scaled.flipped.item() and scaled.snr_db.item() == pytest.approx(10 * math.log10(1 / 0.18), abs=1e-3)
    kept = perturbation_success_rate(detector, two_tones, ranking(440), k=1, factor=0.6)
    assert not kept.flipped.item() and kept.snr_db.item() == pytest.approx(10 * math.log10(1 / 0.08), abs=1e-3)


def test_a_ranking_that_misses_the_tone_flips_nothing(two_tones):
    detector = ToneDetector([440], threshold=0.5)
    clips = torch.cat([two_tones, two_tones])
    attr = torch.cat([ranking(440), ranking(1000)])  # example 1 ranks the distractor first
    result = perturbation_success_rate(detector, clips, attr, k=[1, 2])
    # k = 2 adds the loudest zero-score bin, 440 Hz, to example 1's removal
    assert result.flipped.tolist() == [[True, True], [False, True]]
    assert result.success_rate.tolist() == [0.5, 1.0]
    # the 1 kHz removal takes half the power too; with 440 Hz gone as well, all of it: 0 dB
    assert result.snr_db[1].tolist() == pytest.approx([10 * math.log10(2), 0.0], abs=1e-3)


def test_ties_are_broken_by_energy():
    detector = ToneDetector([440], threshold=0.5)
    flat = torch.ones(1, F)  # every bin ties
    louder_440 = (2 * tone(440) + tone(1000)).unsqueeze(0)
    assert perturbation_success_rate(detector, louder_440, flat, k=1).flipped.item()
    # a louder 1 kHz ranks first; 440 Hz second
    louder_1k = (tone(440) + 2 * tone(1000)).unsqueeze(0)
    assert not perturbation_success_rate(detector, louder_1k, flat, k=1).flipped.item()
    assert perturbation_success_rate(detector, louder_1k, flat, k=2).flipped.item()


def test_feature_mask_ranks_bands_by_their_mean(two_tones):
    detector = ToneDetector([440], threshold=0.5)
    bands = linear_bands(SAMPLE_RATE, 40, sample_rate=SAMPLE_RATE)  # 100 Hz bands
    attr = torch.zeros(1, F)
    attr[0, 1000] = 50.0  # one big bin: band 10 scores 0.5
    attr[0, 400:500] = 1.0  # a whole band of 1s: band 4 scores 1.0, ranks first
    result = perturbation_success_rate(detector, two_tones, attr, feature_mask=bands, k=1)
    assert result.flipped.item()
    assert perturbation_success_rate(detector, two_tones, attr, k=1).flipped.item() is False


def test_batching_gives_the_same_results(two_tones):
    detector = ToneDetector([440], threshold=0.5)
    g = torch.Generator().manual_seed(0)
    clips = torch.cat([two_tones, 0.5 * two_tones, two_tones + 0.1 * torch.randn(1, SAMPLE_RATE, generator=g)])
    attr = torch.cat([ranking(440), ranking(1000, 440), torch.rand(1, F, generator=g)])
    results = []
    for max_batch in (1, 3, None):
        detector.calls = detector.rows = 0
        psr = perturbation_success_rate(detector, clips, attr, k=[1, 2, 50], max_examples_per_batch=max_batch)
        prefix = minimal_sufficient_prefix(detector, clips, attr, max_examples_per_batch=max_batch)
        curve = deletion_curve(detector, clips, attr, n_steps=8, max_examples_per_batch=max_batch)
        results.append((psr, prefix, curve))
        if max_batch == 1:
            assert detector.calls == detector.rows  # one mutant per call
    # the 0.5x clip sits on the detector's threshold (a tie): where no prefix clearly keeps its
    # decision, confidence and fraction are NaN, the same NaN in every batching
    for other in results[1:]:
        for a, b in zip(results[0], other):
            for x, y in zip(a, b):
                torch.testing.assert_close(x, y, equal_nan=True)


def test_additional_forward_args_follow_their_example(two_tones):
    class Gated(nn.Module):
        def forward(self, x: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
            return ToneDetector([440], threshold=0.5)(x) * gate.view(-1, 1)

    clips = torch.cat([two_tones, two_tones])
    gate = torch.tensor([1.0, -1.0])  # example 1 decides class 0 and keeps it when 440 Hz goes
    for max_batch in (1, 2):
        result = perturbation_success_rate(
            Gated(), clips, ranking(440, batch=2), additional_forward_args=(gate,), k=1,
            max_examples_per_batch=max_batch,
        )
        assert result.target.tolist() == [1, 0]
        assert result.flipped.tolist() == [True, True]  # removing the tone flips class 0 to 1 too


def test_per_channel_features_and_energy(two_tones):
    detector = ToneDetector([440], threshold=0.5)  # reads the channel mean
    stereo = torch.stack([two_tones[0], 0.5 * two_tones[0]]).unsqueeze(0)  # (1, 2, T)
    attr = torch.zeros(1, 2, F)
    attr[0, 0, 440] = 1.0  # 440 Hz of the left channel only
    result = perturbation_success_rate(detector, stereo, attr, k=1, per_channel=True)
    # the mean 440 Hz amplitude drops to (0 + 0.5) / 2 = 0.25 < 0.5: a flip; noise power 1/2 against
    # signal power 1 (left) + 1/4 (right)
    assert result.flipped.item() and result.snr_db.item() == pytest.approx(10 * math.log10(2.5), abs=1e-3)
    size = explanation_size(stereo, attr > 0, per_channel=True)
    assert size.features.item() == 1 and size.bin_share.item() == pytest.approx(1 / (2 * F))
    assert size.energy_share.item() == pytest.approx(1 / 2.5, abs=1e-4)  # |X|^2: 1 of 1 + 1 + 1/4 + 1/4


def test_stft_domain_cells(two_tones):
    from captum_freqrex import StftDomain

    detector = ToneDetector([440], threshold=0.5)
    domain = StftDomain(n_fft=256)
    everything = torch.ones(domain.grid_shape(SAMPLE_RATE), dtype=torch.bool)
    assert sufficiency(detector, two_tones, everything, domain=domain).sufficient.item()
    assert necessity(detector, two_tones, everything, domain=domain).necessary.item()
    curve = insertion_curve(detector, two_tones, everything.float().unsqueeze(0), domain=domain, n_steps=2)
    # all cells tie: index order is frequency-major, so the first half holds every frame of the
    # lower 64 STFT bins (31.25 Hz each), 440 Hz included
    assert curve.confidence.shape == (1, 3) and curve.passes[0].tolist() == [False, True, True]


def test_snr_db_by_hand():
    x = torch.ones(2, 100)
    y = torch.stack([0.9 * x[0], x[1]])
    snr = snr_db(x, y)
    assert snr[0].item() == pytest.approx(20.0) and snr[1].item() == math.inf
    # tuple inputs: energies add over inputs, (100 + 100) / (1 + 0) -> 10 log10(200)
    both = snr_db((x[:1], x[:1]), (x[:1] + 0.1, x[:1]))
    assert both.item() == pytest.approx(10 * math.log10(200))
    with pytest.raises(ValueError, match="share one shape"):
        snr_db(x, x[:, :50])


# ---------------------------------------------------------------- curves and the minimal sufficient prefix


class ToneShare(nn.Module):
    """Probabilities: class 0 is the mean normalised magnitude of two tones (clamped to [0, 1])."""

    def __init__(self, freqs, sample_rate):
        super().__init__()
        self.freqs, self.sample_rate = freqs, sample_rate

    def forward(self, x):
        spectrum = torch.fft.rfft(x).abs() / (x.shape[-1] / 2)
        bins = [round(f * x.shape[-1] / self.sample_rate) for f in self.freqs]
        p = spectrum[:, bins].mean(1).clamp(0, 1)
        return torch.stack([p, 1 - p], dim=1)


def test_insertion_and_deletion_curves_by_hand():
    rate = 64  # 1 s at 64 Hz: 33 bins, one per Hz
    clip = (tone(5, sample_rate=rate) + tone(9, sample_rate=rate)).unsqueeze(0)
    model = ToneShare([5, 9], rate)
    n = rate // 2 + 1
    attr = torch.zeros(1, n)
    attr[0, 5], attr[0, 9] = 3.0, 2.0
    deletion = deletion_curve(model, clip, attr, n_steps=100, decision=ArgmaxDecision("probabilities"))
    insertion = insertion_curve(model, clip, attr, n_steps=100)
    assert deletion.k.tolist() == list(range(n + 1))
    torch.testing.assert_close(deletion.fractions, torch.arange(n + 1, dtype=torch.float64) / n)
    # confidence in class 0: deletion 1, 1/2, then 0; insertion 0, 1/2, then 1
    expected_del = torch.tensor([1.0, 0.5] + [0.0] * (n - 1), dtype=torch.float64)
    torch.testing.assert_close(deletion.confidence[0], expected_del, atol=1e-5, rtol=0)
    torch.testing.assert_close(insertion.confidence[0], 1 - expected_del, atol=1e-5, rtol=0)
    # trapezoids: deletion (1/n)(0.75 + 0.25) = 1/n; insertion (1/n)(0.25 + 0.75) + (n - 2)/n
    assert deletion.auc.item() == pytest.approx(1 / n, abs=1e-5)
    assert insertion.auc.item() == pytest.approx((n - 1) / n, abs=1e-5)
    assert deletion.passes[0, 0].item() and not deletion.passes[0, 2:].any()
    # a coarse grid: k = 0, 8, 16, 25, 33 -> deletion 1, 0, 0, 0, 0: area (8/33) / 2
    coarse = deletion_curve(model, clip, attr, n_steps=4)
    assert coarse.k.tolist() == [0, 8, 16, 25, 33]
    assert coarse.auc.item() == pytest.approx(4 / 33, abs=1e-5)


def test_minimal_sufficient_prefix_matches_a_linear_scan():
    clip = (tone(440) + tone(1000) + tone(2500) + 0.5 * tone(3000)).unsqueeze(0)
    model = ToneDetector([440, 1000, 2500], threshold=0.5, require_all=True)  # needs all three
    # a seeded random order (seed 1), the three tones at ranks 0, 1 and 1943; scores a factor
    # e^0.1 apart, so that no tie rule can reorder them
    g = torch.Generator().manual_seed(1)
    order = [b for b in torch.randperm(F, generator=g).tolist() if b not in (440, 1000, 2500)]
    order = [440, 1000] + order[:1941] + [2500] + order[1941:]
    positions = torch.empty(F, dtype=torch.long)
    positions[torch.tensor(order)] = torch.arange(F)
    attr = torch.exp(-0.1 * positions.double()).unsqueeze(0)
    expected = 1944  # the prefix must reach all three tones
    result = minimal_sufficient_prefix(model, clip, attr)
    assert result.size.item() == expected and result.found.item()
    assert result.queries.item() < 60  # vs `expected` queries for a linear scan
    assert sufficiency(model, clip, (positions < expected).unsqueeze(0)).sufficient.item()
    assert not sufficiency(model, clip, (positions < expected - 1).unsqueeze(0)).sufficient.item()
    assert result.fraction.item() == pytest.approx(expected / F)
    assert result.monotone.item() and not result.exhaustive.item()  # a conjunction: monotone


def test_minimal_sufficient_prefix_edge_cases(two_tones, louder_440):
    detector = ToneDetector([440], threshold=0.5)
    classifier = ToneClassifier([440, 1000], floor=0.05)
    clips = torch.cat([louder_440, torch.zeros(1, SAMPLE_RATE)])
    result = minimal_sufficient_prefix(classifier, clips, ranking(440, batch=2))
    # the silent clip is "none" (class 2), which the empty prefix (the baseline) already keeps
    assert result.size.tolist() == [1, 0] and result.target.tolist() == [0, 2]
    # a target other than the decision: the baseline (nothing kept) already decides class 0
    assert minimal_sufficient_prefix(detector, two_tones, ranking(440), target=0).size.item() == 0
    # a target the model never decides, even unmasked: no prefix
    silent = minimal_sufficient_prefix(detector, torch.zeros(1, SAMPLE_RATE), ranking(440), target=1)
    assert silent.size.item() == -1 and not silent.found.item() and math.isnan(silent.confidence.item())


class OddTones(nn.Module):
    """Class 1 when an odd number of the tones ``freqs`` (Hz) is present (normalised rfft magnitude
    above 0.5), class 0 otherwise: sufficiency along a ranking is non-monotone by construction (the
    top-k keeps class 1 exactly when it holds an odd number of the tones)."""

    def __init__(self, freqs, sample_rate=SAMPLE_RATE):
        super().__init__()
        self.freqs, self.sample_rate = list(freqs), sample_rate

    def forward(self, x):
        spectrum = torch.fft.rfft(x).abs() / (x.shape[-1] / 2)
        bins = [round(f * x.shape[-1] / self.sample_rate) for f in self.freqs]
        odd = (spectrum[:, bins] > 0.5).sum(1) % 2 == 1
        margin = torch.where(odd, 5.0, -5.0)
        return torch.stack([-margin, margin], dim=1)


def test_minimal_sufficient_prefix_is_the_first_sufficient_size_when_not_monotone():
    rate = 64  # 1 s at 64 Hz: 33 bins (one per Hz), few enough to probe every prefix size
    clip = (tone(5, sample_rate=rate) + tone(9, sample_rate=rate) + tone(13, sample_rate=rate)).unsqueeze(0)
    model = OddTones([5, 9, 13], sample_rate=rate)  # three tones: class 1
    n = rate // 2 + 1
    order = [20, 21, 22, 5, 9, 23, 24, 25, 13]  # the tones at ranks 3, 4 and 8
    attr = torch.zeros(1, n)
    for i, b in enumerate(order):
        attr[0, b] = float(len(order) - i)
    # top-k holds 0 tones for k <= 3, 1 for k = 4, 2 for k = 5..8, 3 from k = 9: it keeps class 1
    # at k = 4 and from k = 9 on. The test's own linear scan, one model call per size:
    positions = torch.empty(n, dtype=torch.long)
    positions[torch.tensor(order + [b for b in range(n) if b not in order])] = torch.arange(n)
    scan = [sufficiency(model, clip, (positions < k).unsqueeze(0)).sufficient.item() for k in range(n + 1)]
    assert [k for k in range(n + 1) if scan[k]] == [4] + list(range(9, n + 1))
    result = minimal_sufficient_prefix(model, clip, attr)
    assert result.size.item() == 4 and result.found.item()
    assert result.confidence.item() == pytest.approx(1 / (1 + math.exp(-10)), abs=1e-6)
    assert result.monotone.tolist() == [False] and result.exhaustive.tolist() == [True]
    assert result.queries.item() == n  # k = 0..32; k = 33 is the unmasked input
    # a monotone model over the same few features (13 Hz present: class 1): exhaustive, monotone
    monotone = minimal_sufficient_prefix(lambda x: _tone_logits(x, 13), clip, attr)
    assert monotone.size.item() == 9 and monotone.monotone.item() and monotone.exhaustive.item()


def _tone_logits(x, hz_bin):
    """Two logits of 'the tone on rfft bin ``hz_bin`` is present' (normalised magnitude above 0.5)."""
    a = torch.fft.rfft(x).abs()[:, hz_bin] / (x.shape[-1] / 2)
    margin = 10.0 * (a - 0.5)
    return torch.stack([-margin, margin], dim=1)


def test_minimal_sufficient_prefix_flags_a_non_monotone_ranking_in_a_batched_search():
    # 4001 bins: a batched exponential + bisection search, not a scan. The case: the top-1
    # suffices, the top-2..15 do not (two tones: even), the top-16 does again (three tones).
    clip = (tone(440) + tone(1000) + tone(2500)).unsqueeze(0)
    model = OddTones([440, 1000, 2500])
    calls = []
    counted = lambda x: calls.append(x.shape[0]) or model(x)  # noqa: E731
    attr = ranking(440, 1000, *range(3000, 3013), 2500)  # 2500 Hz at rank 15
    result = minimal_sufficient_prefix(counted, clip, attr)
    assert result.size.item() == 1 and result.found.item()
    assert result.monotone.tolist() == [False] and result.exhaustive.tolist() == [False]
    assert result.queries.item() < 60 and len(calls) <= 3  # a few batched calls, not one per size
    # the claim, re-queried by the test: the top-1 keeps class 1 alone, the top-0 and top-2 do not
    assert sufficiency(model, clip, one_hot(440)).sufficient.item()
    assert not sufficiency(model, clip, one_hot(440, 1000)).sufficient.item()
    assert not sufficiency(model, clip, one_hot()).sufficient.item()


def test_minimal_sufficient_prefix_checks_max_scan_features():
    detector = ToneDetector([440], threshold=0.5)
    clip = (tone(440, 0.1) + tone(1000, 0.1)).unsqueeze(0)  # 0.1 s: 401 bins of 10 Hz
    n = 401
    attr = torch.zeros(1, n)
    attr[0, 100], attr[0, 44] = 2.0, 1.0  # 1 kHz first, then 440 Hz
    # every size probed on request, even over 401 bins: the same answer, flagged exact
    scanned = minimal_sufficient_prefix(detector, clip, attr, max_scan_features=n)
    searched = minimal_sufficient_prefix(detector, clip, attr)
    assert scanned.size.item() == searched.size.item() == 2
    assert scanned.exhaustive.item() and not searched.exhaustive.item()
    assert scanned.monotone.item() and searched.monotone.item()
    assert scanned.queries.item() == n and searched.queries.item() < 30
    for bad in (-1, 2.5, True):
        with pytest.raises(ValueError, match="max_scan_features"):
            minimal_sufficient_prefix(detector, clip, attr, max_scan_features=bad)


# ---------------------------------------------------------------- the model's outputs are checked


def _nan_model(x):
    return torch.full((x.shape[0], 2), float("nan"))


def _nan_when_silent(x):
    """ToneDetector on the input normalised by its RMS: 0 / 0 = NaN once every tone is removed."""
    return ToneDetector([440], threshold=0.5)(x / x.square().mean(1, keepdim=True).sqrt())


def _bool_model(x):
    return ToneDetector([440], threshold=0.5)(x).argmax(1) == 1


def _complex_model(x):
    return torch.fft.rfft(x)[:, [440, 1000]]


@pytest.mark.parametrize(
    "model, error, match",
    [
        (_nan_model, ValueError, "NaN or Inf"),
        (_nan_when_silent, ValueError, "NaN or Inf"),
        (_bool_model, TypeError, "torch.bool"),
        (_complex_model, TypeError, "complex"),
        (lambda x: [0.0] * x.shape[0], TypeError, "must return a tensor"),
    ],
    ids=["nan", "nan-on-mutants", "bool", "complex", "list"],
)
def test_bad_model_outputs_raise_in_every_metric(two_tones, model, error, match):
    # an empty set: sufficiency keeps nothing (silence), necessity removes nothing; k = F removes
    # every bin (silence again)
    empty = one_hot()
    with pytest.raises(error, match=match):
        sufficiency(model, two_tones, empty)
    if model is not _nan_when_silent:  # removing nothing leaves the input: nothing to catch
        with pytest.raises(error, match=match):
            necessity(model, two_tones, empty)
    with pytest.raises(error, match=match):
        perturbation_success_rate(model, two_tones, ranking(440, 1000), k=F)


def test_a_model_that_ignores_its_input_is_never_flipped(two_tones):
    # Constant scores: two tied classes, or one probability on the threshold. No change of the
    # input changes the decision, so nothing flips and no set is necessary.
    for constant in (lambda x: torch.zeros(x.shape[0], 2), lambda x: torch.full((x.shape[0], 1), 0.5)):
        result = perturbation_success_rate(constant, two_tones, ranking(440), k=[0, 1, F])
        assert result.flipped.tolist() == [[False, False, False]] and result.success_rate.tolist() == [0.0] * 3
        assert not necessity(constant, two_tones, one_hot(440)).necessary.item()


# ---------------------------------------------------------------- the caller's tensors are protected


class ZeroesItsInput(ToneDetector):
    """ToneDetector that zeroes its input in place after reading it."""

    def forward(self, x):
        out = super().forward(x)
        x.mul_(0)
        return out


def test_a_model_editing_its_input_in_place_leaves_the_caller_alone(two_tones):
    model = ZeroesItsInput([440], threshold=0.5)
    clip = two_tones.clone()
    result = perturbation_success_rate(model, clip, ranking(440), k=[1, 2])
    torch.testing.assert_close(clip, two_tones, rtol=0, atol=0)
    # the same hand-computed answers as for a well-behaved model: removing 440 Hz flips, 3 dB SNR;
    # removing 1 kHz too takes the whole signal, 0 dB
    assert result.flipped.tolist() == [[True, True]] and result.target.tolist() == [1]
    assert result.snr_db[0].tolist() == pytest.approx([10 * math.log10(2), 0.0], abs=1e-3)
    assert sufficiency(model, clip, one_hot(440)).sufficient.item()
    assert minimal_sufficient_prefix(model, clip, ranking(440)).size.item() == 1
    torch.testing.assert_close(clip, two_tones, rtol=0, atol=0)


# ---------------------------------------------------------------- single-output models: one decision per call


def _tone_logit(x):
    """One logit: the normalised magnitudes at 440 Hz and 1 kHz, summed, minus 0.05."""
    a = torch.fft.rfft(x).abs()[:, [440, 1000]] / (x.shape[-1] / 2)
    return (a.sum(1) - 0.05).unsqueeze(1)


def test_a_single_logit_is_read_the_same_way_in_every_batch():
    # clip 0's logit is 0.1 (sigmoid 0.52: class 1) and clip 1's 1.45: the outputs are logits. Its
    # mutants' logits lie in [0, 1] (read alone, they would look like probabilities below 0.5),
    # above 1, or below 0; batches of 1, 2 and 4 rows mix them differently.
    clips = torch.stack([0.07 * tone(440) + 0.08 * tone(1000), tone(440) + 0.5 * tone(1000)])
    attr = ranking(440, 1000, batch=2)
    # logits with the top-0, 1, 2 removed: clip 0: 0.1, 0.03, -0.05; clip 1: 1.45, 0.45, -0.05
    logits = torch.tensor([[0.1, 0.03, -0.05], [1.45, 0.45, -0.05]], dtype=torch.float64)
    for max_batch in (1, 2, 4, None):
        result = perturbation_success_rate(_tone_logit, clips, attr, k=[0, 1, 2], max_examples_per_batch=max_batch)
        assert result.target.tolist() == [1, 1], max_batch
        assert result.flipped.tolist() == [[False, False, True]] * 2, max_batch
        torch.testing.assert_close(result.confidence, logits.sigmoid(), atol=1e-4, rtol=0)
        # 440 Hz alone: logits 0.02 and 0.95, both class 1
        kept = sufficiency(_tone_logit, clips, one_hot(440, batch=2), max_examples_per_batch=max_batch)
        assert kept.sufficient.tolist() == [True, True], max_batch
        torch.testing.assert_close(
            kept.confidence, torch.tensor([0.02, 0.95], dtype=torch.float64).sigmoid(), atol=1e-4, rtol=0
        )


# ---------------------------------------------------------------- no silent coercions


def test_k_must_hold_ints(two_tones):
    detector = ToneDetector([440], threshold=0.5)
    for k in (2.7, [1, 2.7], torch.tensor([2.7]), 2.0, True):
        with pytest.raises(TypeError, match="k values must be ints"):
            perturbation_success_rate(detector, two_tones, ranking(440), k=k)
    with pytest.raises(ValueError, match=r"in \[0, 4001\]"):
        perturbation_success_rate(detector, two_tones, ranking(440), k=[-1])


@pytest.mark.parametrize(
    "target",
    [1.7, torch.tensor(1.7), torch.tensor([1.7]), [1.7], (1.7,)],
    ids=["float", "float-scalar-tensor", "float-tensor", "list-of-float", "tuple-of-float"],
)
def test_float_targets_raise_instead_of_being_truncated(louder_440, target):
    classifier = ToneClassifier([440, 1000, 2500])
    with pytest.raises(TypeError, match=r"target[\s\S]*(float|1\.7)"):
        sufficiency(classifier, louder_440, one_hot(1000), target=target)
