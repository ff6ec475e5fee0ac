"""The frequency mask mechanism: spectra, feature ids, mutants, bands, baselines."""

import pytest
import torch

from captum_freqrex import (
    FeatureSpace,
    RfftDomain,
    StftDomain,
    linear_bands,
    log_bands,
    mel_bands,
    next_fast_len,
)
from captum_freqrex._utils.validation import format_baselines, format_waveforms


def _space(x, baselines=None, **kwargs):
    waves, _ = format_waveforms(x)
    return FeatureSpace(waves, format_baselines(baselines, waves), **kwargs)


def test_mutant_is_irfft_of_mixed_spectrum():
    torch.manual_seed(0)
    x, base = torch.randn(2, 64), torch.randn(64)
    space = _space(x, base)
    keep = (torch.rand(3, space.n_features) > 0.5).float()
    got = space.mutants(1, keep)[0]
    X, Xb = torch.fft.rfft(x[1]), torch.fft.rfft(base)
    expected = torch.fft.irfft(keep * X + (1 - keep) * Xb, n=64)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_keep_all_gives_input_and_keep_none_gives_baseline():
    x = torch.randn(1, 2, 100)
    space = _space(x, 0.25)
    n = space.n_features
    torch.testing.assert_close(space.mutants(0, torch.ones(1, n))[0][0], x[0], atol=1e-5, rtol=0)
    baseline = space.mutants(0, torch.zeros(1, n))[0][0]
    torch.testing.assert_close(baseline, torch.full_like(x[0], 0.25), atol=1e-5, rtol=0)


def test_feature_grid_shapes():
    assert _space(torch.randn(2, 100)).feature_grids == ((51,),)
    assert _space(torch.randn(2, 3, 100)).feature_grids == ((51,),)
    assert _space(torch.randn(2, 3, 100), per_channel=True).feature_grids == ((3, 51),)
    stft = _space(torch.randn(2, 1000), domain=StftDomain(n_fft=64, hop_length=16))
    assert stft.feature_grids == ((33, 1000 // 16 + 1),)


def test_per_channel_features_change_one_channel_only():
    x = torch.randn(1, 2, 64)
    space = _space(x, per_channel=True)
    keep = torch.ones(1, space.n_features)
    keep[0, :33] = 0  # channel 0's bins
    mutant = space.mutants(0, keep)[0][0]
    assert mutant[0].abs().max() < 1e-5
    torch.testing.assert_close(mutant[1], x[0, 1], atol=1e-5, rtol=0)


def test_feature_mask_groups_bins_with_captum_semantics():
    mask = torch.tensor([5, 5, 9, 9, 9, 7] + [7] * 27)  # arbitrary ids, relabelled in id order
    space = _space(torch.randn(1, 64), feature_mask=mask)
    assert space.n_features == 3
    assert space.feature_sizes().tolist() == [2, 28, 3]
    assert space.ids()[0][:6].tolist() == [0, 0, 2, 2, 2, 1]
    leading_batch = _space(torch.randn(1, 64), feature_mask=mask.unsqueeze(0))
    assert leading_batch.n_features == 3


def test_tuple_inputs_share_ids_across_tensors():
    space = _space((torch.randn(2, 32), torch.randn(2, 32)))
    assert space.n_features == 34
    shared = _space((torch.randn(2, 32), torch.randn(2, 32)), feature_mask=(torch.zeros(17, dtype=torch.long),) * 2)
    assert shared.n_features == 1


@pytest.mark.parametrize(
    "mask, message",
    [
        (torch.zeros(10, dtype=torch.long), "does not broadcast to the feature grid"),
        (torch.zeros(2, 33, dtype=torch.long), "pass per_channel=True"),
        (torch.zeros(33), "integer tensor"),
        (-torch.ones(33, dtype=torch.long), "negative ids"),
    ],
)
def test_bad_feature_mask_names_the_problem(mask, message):
    with pytest.raises((ValueError, TypeError), match=message):
        _space(torch.randn(1, 2, 64), feature_mask=mask)


def test_baseline_forms():
    x = torch.randn(3, 64)
    per_example = torch.randn(3, 64)
    space = _space(x, per_example)
    torch.testing.assert_close(space.mutants(2, torch.zeros(1, space.n_features))[0][0], per_example[2], atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="does not broadcast"):
        _space(x, torch.randn(2, 64))


def test_stft_roundtrip():
    x = torch.randn(2, 800)
    space = _space(x, domain=StftDomain(n_fft=128))
    torch.testing.assert_close(space.mutants(1, torch.ones(1, space.n_features))[0][0], x[1], atol=1e-4, rtol=0)


def test_bands_are_monotone_and_sized():
    n, sr = 16000, 16000
    for mask in (linear_bands(n, 8, sample_rate=sr), log_bands(n, sr, 8), mel_bands(n, sr, 8)):
        assert mask.shape == (n // 2 + 1,)
        assert (mask.diff() >= 0).all() and mask[0] == 0 and mask.max() == 7
    lin = linear_bands(n, 4, sample_rate=sr)
    assert torch.bincount(lin).tolist() == [2000, 2000, 2000, 2001]
    assert mel_bands(n, sr, 8, domain=StftDomain(n_fft=256)).shape == (129, 1)
    with pytest.raises(ValueError, match="n_bands"):
        linear_bands(n, 0)


def test_next_fast_len_and_slow_length_warning():
    assert next_fast_len(479_999) == 480_000
    assert next_fast_len(7) == 8
    with pytest.warns(UserWarning, match="2/3/5-smooth"):
        RfftDomain().analyze(torch.randn(1, 4099))


def test_mutants_written_into_given_rows_equal_new_ones(monkeypatch):
    from captum_freqrex._core import feature_space as feature_space_module

    torch.manual_seed(2)
    x = torch.randn(1, 2, 64)
    space = _space(x, torch.randn(64))
    keep = torch.rand(5, space.n_features)
    expected = space.mutants(0, keep)[0]
    # Two waveforms per transform call: the rows arrive in three chunks.
    monkeypatch.setattr(feature_space_module, "CPU_TRANSFORM_BYTES", 2 * 2 * 64 * 4)
    rows = torch.full((5, 2, 64), float("nan"))
    returned = space.mutants(0, keep, out=[rows])[0]
    assert returned is rows
    torch.testing.assert_close(rows, expected, atol=1e-6, rtol=0)


def test_no_keep_rows_give_no_mutants():
    space = _space(torch.randn(1, 2, 64))
    assert space.mutants(0, torch.zeros(0, space.n_features))[0].shape == (0, 2, 64)
    assert space.part_waveforms(0, [])[0] == []
