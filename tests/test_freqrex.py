"""FreqReX on known-answer models: responsibility, certified sets, Captum conventions."""

import pytest
import torch
from captum.attr import NoiseTunnel, PerturbationAttribution

from captum_freqrex import FreqReX, FreqReXWarning, PartitionRefinement, StftDomain, ThresholdDecision, linear_bands
from known_models import SAMPLE_RATE, ToneClassifier, ToneDetector, bin_of, tone

BIN_440 = bin_of(440, SAMPLE_RATE)


def test_is_a_captum_perturbation_attribution(detector):
    explainer = FreqReX(detector)
    assert isinstance(explainer, PerturbationAttribution)
    assert explainer.get_name() == "FreqReX"
    assert not explainer.multiplies_by_inputs


def test_sufficient_set_is_the_decisive_bin(detector, tone_clip):
    expl = FreqReX(detector).explain(tone_clip)[0]
    n_bins = tone_clip.shape[-1] // 2 + 1
    assert expl.original.decided == 1 and expl.target == 1
    assert expl.ranking[0] == BIN_440
    assert bool(expl.sufficient.mask[BIN_440])
    assert expl.sufficient.size <= 3 and expl.sufficient.size / n_bins < 0.001
    assert expl.sufficient_necessary.flip_class == 0
    assert expl.certified


def test_sets_are_certified_by_the_model(detector, tone_clip):
    """Re-query the model ourselves on the reconstructed waveforms: the claims hold."""
    expl = FreqReX(detector).explain(tone_clip)[0]
    keep = detector(expl.waveform("sufficient").unsqueeze(0)).argmax(1)
    removed = detector(expl.waveform("sufficient_necessary", removed=True).unsqueeze(0)).argmax(1)
    assert keep.item() == 1 and removed.item() == 0
    complete = detector(expl.waveform("complete").unsqueeze(0)).softmax(1)[0, 1]
    assert complete >= expl.original.confidence - 0.05


def test_ignored_frequencies_get_zero_responsibility(detector, tone_clip):
    resp = FreqReX(detector).attribute(tone_clip)[0]
    others = torch.ones_like(resp, dtype=torch.bool)
    others[BIN_440] = False
    assert resp[BIN_440] > 0.5
    assert resp[others].abs().max() == 0  # 1 kHz, 2.5 kHz and the noise are not causes
    assert torch.isclose(resp.sum(), torch.tensor(1.0, dtype=resp.dtype))


def test_conjunction_needs_both_tones(tone_clip):
    both = ToneDetector([440, 1000], threshold=0.3, require_all=True)
    expl = FreqReX(both).explain(tone_clip)[0]
    mask = expl.sufficient.mask
    assert mask[BIN_440] and mask[bin_of(1000, SAMPLE_RATE)]
    assert expl.sufficient.size <= 4 and expl.certified


def test_multichannel_shared_and_per_channel(detector, tone_clip):
    stereo = torch.stack([tone_clip[0], 0.2 * tone_clip[0]], dim=0).unsqueeze(0)  # (1, 2, T)
    shared = FreqReX(detector).explain(stereo)[0]
    assert shared.responsibility.shape == (SAMPLE_RATE // 2 + 1,)
    assert shared.sufficient.mask[BIN_440] and shared.certified
    per_channel = FreqReX(detector).attribute(stereo, per_channel=True)
    assert per_channel.shape == (1, 2, SAMPLE_RATE // 2 + 1)
    assert per_channel[0, :, BIN_440].sum() > 0.5  # the detector reads the channel mean


def test_band_features(detector, tone_clip):
    mask = linear_bands(SAMPLE_RATE, 40, sample_rate=SAMPLE_RATE)  # 100 Hz bands
    expl = FreqReX(detector).explain(tone_clip, feature_mask=mask)[0]
    assert expl.feature_responsibility.shape == (40,)
    assert expl.ranking[0] == 4  # 400-500 Hz
    assert expl.sufficient.size == 1 and expl.sufficient.n_bins == 100
    # Attributions are per bin: every bin of a band carries its band's value.
    assert torch.all(expl.responsibility[400:500] == expl.feature_responsibility[4])


def test_batch_invariance_and_seeded_determinism(classifier):
    g = torch.Generator().manual_seed(1)
    batch = torch.stack(
        [tone(440) + 0.3 * tone(1000), tone(1000) + 0.2 * tone(2500), tone(2500) + 0.1 * tone(440)]
    ) + 0.05 * torch.randn(3, SAMPLE_RATE, generator=g)
    explainer = FreqReX(classifier)
    together = explainer.attribute(batch, seed=3)
    alone = torch.cat([explainer.attribute(batch[i : i + 1], seed=3) for i in range(3)])
    torch.testing.assert_close(together, alone, rtol=0, atol=0)
    torch.testing.assert_close(explainer.attribute(batch, seed=3), together, rtol=0, atol=0)
    g1, g2 = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
    torch.testing.assert_close(
        explainer.attribute(batch, generator=g1), explainer.attribute(batch, generator=g2), rtol=0, atol=0
    )
    assert together.argmax(1).tolist() == [BIN_440, bin_of(1000, SAMPLE_RATE), bin_of(2500, SAMPLE_RATE)]


def test_tuple_input_and_target_forms(classifier):
    x = (tone(440) + 0.6 * tone(1000)).unsqueeze(0).repeat(2, 1)
    explainer = FreqReX(classifier)
    as_tensor = explainer.attribute(x, target=1)
    as_tuple = explainer.attribute((x,), target=1)
    assert isinstance(as_tuple, tuple) and len(as_tuple) == 1
    torch.testing.assert_close(as_tensor, as_tuple[0])
    for target in ([1, 1], torch.tensor([1, 1]), torch.tensor(1), (1,)):
        torch.testing.assert_close(explainer.attribute(x, target=target), as_tensor)
    # The explained target matters: class 1 (1 kHz) is caused by the 1 kHz bin.
    assert as_tensor[0].argmax() == bin_of(1000, SAMPLE_RATE)
    assert explainer.attribute(x, target=None)[0].argmax() == BIN_440


def test_additional_forward_args_reach_the_model(tone_clip):
    class Gated(torch.nn.Module):
        def forward(self, x, freq_index):
            spectrum = torch.fft.rfft(x).abs() / (x.shape[-1] / 2)
            energy = spectrum.gather(1, freq_index.view(-1, 1)).squeeze(1)
            return torch.stack([0.3 - energy, energy - 0.3], 1) * 10

    x = tone_clip.repeat(2, 1)
    which = torch.tensor([BIN_440, bin_of(1000, SAMPLE_RATE)])
    resp = FreqReX(Gated()).attribute(x, additional_forward_args=(which,))
    assert resp.argmax(1).tolist() == which.tolist()


def test_model_calls_are_batched(detector, tone_clip):
    rows = []

    def model(x):
        rows.append(x.shape[0])
        return detector(x)

    # The refinement itself (the default asks the loud 440 Hz peak alone first and needs none).
    explainer = FreqReX(model, search="refinement")
    explainer.explain(tone_clip, perturbations_per_eval=40)
    stats = explainer.last_stats
    assert max(rows) <= 40 and stats.queries == sum(rows)
    # A refinement step asks its first 5 mutants (the rest of S, and each of its 4 sub-pieces
    # with it) in one call; here one sub-piece settles every step, so its other 10 are not asked.
    assert sum(r == 5 for r in rows) >= len(rows) // 2
    assert stats.forward_calls == len(rows) < stats.queries / 3
    assert 0 < stats.model_seconds <= stats.total_seconds


def test_sets_of_one_size_are_certified_by_one_query(detector, tone_clip):
    """The tone bin is every set: the last batch re-queries it kept once and removed once, then
    the unmasked input (is the model stable?); the rows are exactly the returned waveforms."""
    batches = []

    def model(x):
        batches.append(x.clone())
        return detector(x)

    expl = FreqReX(model).explain(tone_clip)[0]
    sizes = {expl.sufficient.size, expl.sufficient_necessary.size, expl.complete.size}
    assert sizes == {1} and expl.certified
    certification = batches[-1]
    assert certification.shape[0] == 3
    assert torch.equal(certification[0], expl.waveform("sufficient"))
    assert torch.equal(certification[1], expl.waveform("sufficient_necessary", removed=True))
    assert torch.equal(certification[2], tone_clip[0])
    assert expl.complete.certificate.kept == expl.sufficient.certificate.kept


def test_inputs_that_require_grad_are_explained_as_plain_inputs(detector, tone_clip):
    """A Captum pipeline may hand over inputs (or baselines) that require grad, e.g. after IG."""
    baseline = torch.zeros_like(tone_clip)
    plain = FreqReX(detector).attribute(tone_clip, baselines=baseline)
    tracked = FreqReX(detector).attribute(
        tone_clip.clone().requires_grad_(), baselines=baseline.clone().requires_grad_()
    )
    assert not tracked.requires_grad and torch.equal(tracked, plain)
    expl = FreqReX(detector).explain(tone_clip.clone().requires_grad_())[0]
    assert expl.sufficient.mask[BIN_440] and expl.certified


def test_query_budgets_are_respected(detector, tone_clip):
    explain = FreqReX(detector).explain
    expl = explain(tone_clip, max_queries=200, max_extraction_queries=32, convergence_top_k=None)[0]
    assert expl.responsibility_queries <= 200 and expl.extraction_queries <= 32
    assert expl.stopped_by == "max_queries"  # without the stopping rule, the searches run to the cap
    settled = explain(tone_clip, max_queries=200, max_extraction_queries=32)[0]
    assert settled.stopped_by == "minimal" and settled.responsibility_queries <= 200
    # Plus two: the unmasked input and the baseline alone, queried together before the search.
    assert expl.stats.queries == 2 + expl.responsibility_queries + expl.extraction_queries


def test_noise_tunnel_accepts_freqrex(detector, tone_clip):
    nt = NoiseTunnel(FreqReX(detector))
    resp = nt.attribute(tone_clip.repeat(2, 1), nt_type="smoothgrad", nt_samples=2, stdevs=1e-3, target=1)
    assert resp.shape == (2, SAMPLE_RATE // 2 + 1)
    assert resp.argmax(1).tolist() == [BIN_440, BIN_440]


def test_threshold_and_custom_pass_predicates(tone_clip):
    class Sigmoid(torch.nn.Module):
        def forward(self, x):
            spectrum = torch.fft.rfft(x).abs() / (x.shape[-1] / 2)
            return torch.sigmoid(10 * (spectrum[:, BIN_440] - 0.5)).unsqueeze(1)

    expl = FreqReX(Sigmoid()).explain(tone_clip)[0]
    assert expl.target == 1 and expl.sufficient.mask[BIN_440] and expl.certified
    strict = FreqReX(Sigmoid(), decision=ThresholdDecision(threshold=0.99)).explain(tone_clip)[0]
    assert strict.target == 1 and strict.original.confidence > 0.99

    def louder_than_original(outputs, target):
        return outputs[:, 0] > 0.95

    custom = FreqReX(Sigmoid()).explain(tone_clip, decision=louder_than_original)[0]
    assert custom.sufficient.mask[BIN_440] and custom.certified


def test_stft_domain_localises_a_tone_in_time():
    half = SAMPLE_RATE // 2
    clip = torch.cat([torch.zeros(half), tone(1000, 0.5)]) + 0.3 * tone(2000)

    class LateTone(torch.nn.Module):
        def forward(self, x):
            late = torch.fft.rfft(x[:, -half:]).abs() / (half / 2)
            energy = late[:, bin_of(1000, half)]
            return torch.stack([0.5 - energy, energy - 0.5], 1) * 10

    domain = StftDomain(n_fft=256, hop_length=64)
    expl = FreqReX(LateTone(), domain=domain).explain(clip.unsqueeze(0), max_queries=600)[0]
    grid = expl.responsibility
    assert grid.shape == (129, SAMPLE_RATE // 64 + 1)
    row = grid.sum(1).argmax().item()
    assert abs(row - 1000 * 256 / SAMPLE_RATE) <= 1  # 1 kHz row of the STFT
    time_profile = grid.sum(0)
    early = time_profile[: grid.shape[1] // 2 - 4].sum()
    assert early < 0.1 * time_profile.sum()  # the tone only sounds in the second half
    assert expl.sufficient is not None and expl.sufficient.certified


def test_target_that_the_input_does_not_reach_is_reported(classifier):
    quiet = (tone(440) + 0.01 * tone(2500)).unsqueeze(0)
    expl = FreqReX(classifier).explain(quiet, target=2)[0]
    assert not expl.original.passes
    assert expl.sufficient is None or expl.sufficient.mask[bin_of(2500, SAMPLE_RATE)]
    assert "sufficient" in expl.summary()["sets"]


@pytest.mark.parametrize(
    "inputs, kwargs, error, message",
    [
        (torch.randn(8000), {}, ValueError, r"\(batch, time\)"),
        (torch.full((1, 100), float("nan")), {}, ValueError, "NaN or Inf"),
        (torch.randn(1, 4), {}, ValueError, "too short"),
        (torch.randn(1, 100).long(), {}, TypeError, "floating-point"),
        (torch.randn(1, 100).half(), {}, TypeError, r"float32 or float64; pass x.float\(\)"),
        (torch.randn(1, 100).bfloat16(), {}, TypeError, "bfloat16: the frequency transforms"),
        (torch.randn(1, 100), {"target": 7}, ValueError, "out of range"),
        (torch.randn(2, 100), {"target": [0]}, ValueError, "one entry per example"),
        (torch.randn(1, 100), {"n_samples": 0}, ValueError, "n_samples"),
        (torch.randn(1, 100), {"perturbations_per_eval": 0}, ValueError, "perturbations_per_eval"),
    ],
)
def test_bad_input_raises_clear_errors(classifier, inputs, kwargs, error, message):
    with pytest.raises(error, match=message):
        FreqReX(classifier).attribute(inputs, **kwargs)


def test_bad_model_output_raises_clear_error():
    with pytest.raises(ValueError, match="one row per waveform"):
        FreqReX(lambda x: x.sum()).attribute(torch.randn(2, 100))
    with pytest.raises(ValueError, match="NaN or Inf"):
        FreqReX(lambda x: torch.full((x.shape[0], 2), float("nan"))).attribute(torch.randn(1, 100))


def test_attributions_that_cannot_be_ranked_raise_clear_error(detector, tone_clip):
    attributions = torch.zeros(1, tone_clip.shape[-1] // 2 + 1)
    attributions[0, 3] = float("nan")
    with pytest.raises(ValueError, match="NaN or Inf, which cannot be ranked"):
        FreqReX(detector).explain(tone_clip, attributions=attributions)


def test_ties_in_an_unsplit_piece_rank_the_louder_bin_first():
    # 60 queries (four steps, each charged its 15 mutants) cannot refine 4,001 bins down to one:
    # the 1 kHz bin shares its responsibility with its piece, and the energy tie-break still puts
    # it first. (The refinement itself: the default would ask the loud 1 kHz peak alone first.)
    # Each step was settled by its first 5 mutants: 20 were asked.
    torch.manual_seed(0)
    model = ToneClassifier([440, 1000, 2500]).eval()
    x = (0.5 * tone(1000) + 0.2 * tone(440) + 0.01 * torch.randn(SAMPLE_RATE)).unsqueeze(0)
    explanation = FreqReX(model, search=PartitionRefinement(prefer="energy")).explain(x, max_queries=60, seed=0)[0]
    assert explanation.responsibility_queries == 20
    tied = explanation.feature_responsibility == explanation.feature_responsibility.max()
    assert tied.sum() > 1
    assert explanation.ranking[0].item() == bin_of(1000, SAMPLE_RATE)
    assert explanation.sufficient.size == 1 and explanation.sufficient.certified


def test_necessary_mode_finds_the_frequency_whose_removal_fools_the_model():
    from captum_freqrex.metrics import perturbation_success_rate

    torch.manual_seed(0)
    model = ToneClassifier([440, 1000, 2500]).eval()
    x = torch.stack([
        0.5 * tone(1000) + 0.2 * tone(440) + 0.01 * torch.randn(SAMPLE_RATE),
        0.5 * tone(2500) + 0.3 * tone(1000) + 0.01 * torch.randn(SAMPLE_RATE),
    ])
    responsibility = FreqReX(model).attribute(x, mode="necessary", seed=0)
    assert responsibility[0].argmax().item() == bin_of(1000, SAMPLE_RATE)
    assert responsibility[1].argmax().item() == bin_of(2500, SAMPLE_RATE)
    fooled = perturbation_success_rate(model, x, responsibility, k=1)
    assert fooled.flipped.tolist() == [True, True]
    assert fooled.decided.tolist() == [0, 1]  # 1 kHz gone -> 440 Hz; 2.5 kHz gone -> 1 kHz
    # The sets extracted from the necessary ranking are certified like any other.
    explanation = FreqReX(model).explain(x[:1], mode="necessary", seed=0)[0]
    assert explanation.sufficient_necessary.certified and explanation.sufficient_necessary.size == 1


def test_necessary_mode_without_a_flipping_baseline_finds_nothing():
    model = ToneClassifier([440, 1000, 2500]).eval()
    x = (0.5 * tone(1000)).unsqueeze(0)
    # The baseline is the input itself: removing anything changes nothing, no cause exists. The
    # refinement still tries removals (up to its budget) and says so.
    with pytest.warns(FreqReXWarning, match="no removal the search tried within its budget did") as caught:
        responsibility = FreqReX(model).attribute(x, baselines=x, mode="necessary", seed=0, max_queries=200)
    assert (responsibility == 0).all()
    assert not any("cannot change" in str(w.message) for w in caught)


def test_unknown_mode_is_rejected():
    with pytest.raises(ValueError, match="mode must be one of 'sufficient', 'necessary'"):
        FreqReX(ToneClassifier([440])).attribute(tone(440).unsqueeze(0), mode="contrastive")


def test_a_model_returning_a_view_of_its_input_is_not_corrupted_by_buffer_reuse():
    # Refinement mutants share one buffer per search; outputs that alias it must survive the
    # next batch (15 mutants per call forces several calls per refinement wave).
    x = (tone(440) + 0.5 * tone(1000)).unsqueeze(0)

    def view_model(waves):
        return waves[:, :20:19]

    def copy_model(waves):
        return waves[:, :20:19].clone()

    options = dict(perturbations_per_eval=15, seed=0, max_queries=300)
    torch.testing.assert_close(
        FreqReX(view_model).attribute(x, **options), FreqReX(copy_model).attribute(x, **options), rtol=0, atol=0
    )


@pytest.mark.parametrize("n_pieces", [2, 3, 6])
def test_cut_width_and_model_batch_do_not_change_the_answer(detector, tone_clip, n_pieces):
    # Batches of 4 rows split every step's mutants (2**n_pieces - 1 of them) over several calls.
    options = dict(n_pieces=n_pieces, seed=0, max_queries=400)
    small = FreqReX(detector).attribute(tone_clip, perturbations_per_eval=4, **options)
    large = FreqReX(detector).attribute(tone_clip, perturbations_per_eval=128, **options)
    torch.testing.assert_close(small, large, rtol=0, atol=1e-6)
    # With wide cuts the budget may end before single bins: the tone bin then shares the top.
    assert small[0, BIN_440] == small.max() > 0

