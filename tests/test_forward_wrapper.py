"""FrequencyForward: any Captum method over FreqReX's frequency features."""

import pytest
import torch
from captum.attr import FeatureAblation, IntegratedGradients, KernelShap
from captum.metrics import infidelity, sensitivity_max

from captum_freqrex import FreqReX, FrequencyForward, linear_bands
from known_models import SAMPLE_RATE, bin_of

BIN_440 = bin_of(440, SAMPLE_RATE)


def test_all_kept_reproduces_the_model_output(detector, tone_clip):
    wrapped = FrequencyForward(detector, tone_clip)
    torch.testing.assert_close(wrapped(wrapped.ones()), detector(tone_clip), atol=1e-4, rtol=1e-4)
    assert wrapped.ones().shape == (1, SAMPLE_RATE // 2 + 1)
    assert wrapped.calls == 1 and wrapped.queries == 1


def test_integrated_gradients_over_frequency_bins(detector, tone_clip):
    wrapped = FrequencyForward(detector, tone_clip)
    attr = IntegratedGradients(wrapped).attribute(wrapped.ones(), baselines=wrapped.zeros(), target=1, n_steps=16)
    assert attr.shape == (1, SAMPLE_RATE // 2 + 1)
    assert attr[0].abs().argmax() == BIN_440


def test_kernel_shap_and_feature_ablation_share_freqrex_bands(detector, tone_clip):
    bands = linear_bands(SAMPLE_RATE, 40, sample_rate=SAMPLE_RATE)
    wrapped = FrequencyForward(detector, tone_clip)
    shap = KernelShap(wrapped).attribute(
        wrapped.ones(), baselines=wrapped.zeros(), target=1, feature_mask=bands.unsqueeze(0), n_samples=200
    )
    ablation = FeatureAblation(wrapped).attribute(
        wrapped.ones(), baselines=wrapped.zeros(), target=1, feature_mask=bands.unsqueeze(0)
    )
    freqrex = FreqReX(detector).attribute(tone_clip, feature_mask=bands)
    for attr in (shap, ablation, freqrex):
        assert attr.shape == (1, SAMPLE_RATE // 2 + 1)
        assert attr[0].argmax() // 100 == 4  # all three point at the 400-500 Hz band


def test_stacked_batches_map_rows_to_examples(detector, tone_clip):
    batch = torch.cat([tone_clip, torch.zeros_like(tone_clip)])
    wrapped = FrequencyForward(detector, batch)
    stacked = torch.cat([wrapped.ones()] * 3)  # how Captum expands inputs
    out = wrapped(stacked).argmax(1)
    assert out.tolist() == [1, 0] * 3
    with pytest.raises(ValueError, match="multiple of the batch"):
        wrapped(torch.ones(3, SAMPLE_RATE // 2 + 1))
    with pytest.raises(ValueError, match="feature grid"):
        wrapped(torch.ones(2, 10))


def test_interleaved_rows_for_noise_tunnel_and_captum_metrics(detector, tone_clip):
    batch = torch.cat([tone_clip, torch.zeros_like(tone_clip)])
    wrapped = FrequencyForward(detector, batch, rows="interleaved")
    interleaved = wrapped.ones().repeat_interleave(3, dim=0)  # how NoiseTunnel and infidelity expand
    assert wrapped(interleaved).argmax(1).tolist() == [1, 1, 1, 0, 0, 0]
    with pytest.raises(ValueError, match="'tiled' or 'interleaved'"):
        FrequencyForward(detector, batch, rows="by-example")


def test_infidelity_over_a_batch_matches_each_example_alone(detector, tone_clip):
    batch = torch.cat([tone_clip, 0.3 * tone_clip])
    attributions = FreqReX(detector).attribute(batch, target=1)

    def remove_first_bins(coefficients):
        keep = torch.ones_like(coefficients)
        keep[:, :500] = 0.0
        return coefficients - coefficients * keep, coefficients * keep

    together = infidelity(
        FrequencyForward(detector, batch, rows="interleaved"), remove_first_bins,
        torch.ones(2, SAMPLE_RATE // 2 + 1), attributions, target=1, n_perturb_samples=2,
    )
    alone = torch.cat([
        infidelity(FrequencyForward(detector, batch[i : i + 1]), remove_first_bins,
                   torch.ones(1, SAMPLE_RATE // 2 + 1), attributions[i : i + 1], target=1, n_perturb_samples=2)
        for i in range(2)
    ])
    torch.testing.assert_close(together, alone)


def test_captum_metrics_accept_freqrex(detector, tone_clip):
    explainer = FreqReX(detector)
    sens = sensitivity_max(explainer.attribute, tone_clip, perturb_radius=1e-4, n_perturb_samples=2, target=1)
    assert sens.shape == (1,) and torch.isfinite(sens).all()

    wrapped = FrequencyForward(detector, tone_clip)
    attributions = explainer.attribute(tone_clip, target=1)

    def drop_random_bins(coefficients):
        keep = (torch.rand_like(coefficients) > 0.1).float()
        return coefficients - coefficients * keep, coefficients * keep

    infid = infidelity(wrapped, drop_random_bins, wrapped.ones(), attributions, target=1, n_perturb_samples=4)
    assert infid.shape == (1,) and torch.isfinite(infid).all()


def test_sets_extracted_and_certified_from_another_methods_ranking(detector, tone_clip):
    wrapped = FrequencyForward(detector, tone_clip)
    ig = IntegratedGradients(wrapped).attribute(wrapped.ones(), baselines=wrapped.zeros(), target=1, n_steps=16)
    expl = FreqReX(detector).explain(tone_clip, attributions=ig)[0]
    assert expl.stopped_by == "attributions" and expl.responsibility_queries == 0
    assert expl.ranking[0] == BIN_440 and expl.sufficient.size == 1 and expl.certified
    with pytest.raises(ValueError, match="feature grid"):
        FreqReX(detector).explain(tone_clip, attributions=ig[:, :10])
