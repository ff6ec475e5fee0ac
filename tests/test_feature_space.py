"""The frequency mask mechanism: spectra, feature ids, mutants, bands, baselines."""

import pytest
import torch

from captum_freqrex import (
    FeatureSpace,
    FreqReX,
    FrequencyForward,
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
    for mask in (linear_bands(n, 8, sample_rate=sr), log_bands(n, 8, sample_rate=sr), mel_bands(n, 8, sample_rate=sr)):
        assert mask.shape == (n // 2 + 1,)
        assert (mask.diff() >= 0).all() and mask[0] == 0 and mask.max() == 7
    lin = linear_bands(n, 4, sample_rate=sr)
    assert torch.bincount(lin).tolist() == [2000, 2000, 2000, 2001]
    assert mel_bands(n, 8, sample_rate=sr, domain=StftDomain(n_fft=256)).shape == (129, 1)
    with pytest.raises(ValueError, match="n_bands"):
        linear_bands(n, 0)


@pytest.mark.parametrize("helper", [linear_bands, log_bands, mel_bands])
def test_band_helpers_share_one_argument_order(helper):
    # (num_samples, n_bands, *, sample_rate): the same call builds 64 bands with every helper.
    n, sr = 16000, 16000
    mask = helper(n, 64, sample_rate=sr)
    assert mask.shape == (n // 2 + 1,) and mask.max() == 63


@pytest.mark.parametrize("helper", [linear_bands, log_bands, mel_bands])
def test_band_helpers_refuse_a_positional_sample_rate(helper):
    # log_bands(T, 64, 16000) used to mean sample_rate=64, n_bands=16000 and built 3,001 bands;
    # in either order a third positional number is refused with the call to write instead.
    name = helper.__name__
    with pytest.raises(TypeError, match=rf"{name}\(num_samples, n_bands, sample_rate=16000\)"):
        helper(16000, 64, 16000)
    with pytest.raises(TypeError, match=r"sample_rate"):
        helper(16000, 16000, 64)


def test_next_fast_len_and_slow_length_warning():
    assert next_fast_len(479_999) == 480_000
    assert next_fast_len(7) == 8
    with pytest.warns(UserWarning, match="2/3/5-smooth"):
        RfftDomain().analyze(torch.randn(1, 4099))


@pytest.mark.parametrize("synthesis", ["auto", "reference"])
def test_mutants_written_into_given_rows_equal_new_ones(synthesis):
    torch.manual_seed(2)
    x = torch.randn(1, 2, LONG)
    space = _space(x, torch.randn(LONG), synthesis=synthesis)
    # More rows than one inverse-transform call takes: they are written in two chunks.
    n_rows = space.rows_per_transform() + 2
    keep = torch.rand(n_rows, space.n_features)
    keep[0] = 0.0
    keep[0, 7] = 1.0  # a few-bin row, for "auto"
    expected = space.mutants(0, keep)[0]
    rows = torch.full((n_rows, 2, LONG), float("nan"))
    returned = space.mutants(0, keep, out=[rows])[0]
    assert returned is rows
    torch.testing.assert_close(rows, expected, atol=1e-6, rtol=0)


def test_mutants_in_place_and_through_a_copy_are_the_same_bit_for_bit():
    # Consecutive rows are transformed straight into contiguous targets; rows split by a few-bin
    # row, or a target that is not contiguous, go through a copy: the same numbers either way.
    torch.manual_seed(3)
    x = torch.randn(1, 2, LONG)
    space = _space(x, torch.randn(LONG))
    keep = torch.rand(5, space.n_features)
    keep[2] = 0.0
    keep[2, 7] = 1.0  # a few-bin row between the others
    contiguous = space.mutants(0, keep[:2], out=[torch.empty(2, 2, LONG)])[0]
    strided = torch.empty(5, 3, LONG)[:, :2]
    split = space.mutants(0, keep, out=[strided])[0]
    assert not split.is_contiguous()
    assert torch.equal(split[:2], contiguous)
    stft = _space(x, None, domain=StftDomain(n_fft=256, hop_length=128))
    cells = torch.rand(2, stft.n_features)
    assert torch.equal(stft.mutants(0, cells, out=[torch.empty(2, 2, LONG)])[0], stft.mutants(0, cells)[0])


def test_no_keep_rows_give_no_mutants():
    space = _space(torch.randn(1, 2, 64))
    assert space.mutants(0, torch.zeros(0, space.n_features))[0].shape == (0, 2, 64)
    assert space.part_waveforms(0, [])[0] == []


# ------------------------------------------------------------------ synthesis="auto" against "reference"

#: Long enough for every CPU speed-up: few-bin products start at 2**18 samples (up to 16 bins
#: there), and a mono batch of more than 24 mutants (24 MiB of waveforms) takes two transform calls.
LONG = 2**18

#: "auto" equals "reference" within this share of each mutant's peak, plus this share of the
#: clip's peak (a near-silent mutant's own peak is at the rounding level of the clip). Measured
#: differences are at most about 2e-7 of the clip's peak in float32: float rounding.
RELATIVE, FLOOR = 1e-5, 1e-6

SYNTHESIS_CASES = {
    "bins, zero baseline": (lambda: torch.randn(2, LONG), None, {}),
    "bins, noise baseline": (lambda: torch.randn(2, LONG), lambda: 0.3 * torch.randn(LONG), {}),
    "bins, two channels shared, constant baseline": (lambda: torch.randn(2, 2, LONG), lambda: 0.1, {}),
    "bins per channel": (lambda: torch.randn(2, 2, LONG), lambda: 0.3 * torch.randn(2, 2, LONG), {"per_channel": True}),
    # 8-bin bands: keeping or removing two of them is a few-bin product.
    "bands": (lambda: torch.randn(2, LONG), lambda: 0.3 * torch.randn(LONG), {"feature_mask": linear_bands(LONG, 16384)}),
    "stft cells": (
        lambda: torch.randn(2, LONG), lambda: 0.3 * torch.randn(LONG), {"domain": StftDomain(n_fft=256, hop_length=128)}
    ),
    # Features that are not runs of bins: every keep-mask goes through a gather.
    "interleaved ids": (lambda: torch.randn(2, LONG), lambda: 0.2, {"feature_mask": torch.arange(LONG // 2 + 1) % 4099}),
}


def _keep_rows(n_rows, n_features, generator):
    """Keep-masks cycling through the kinds of mutant the search and extraction make."""
    rows = []
    for row in range(n_rows):
        kind = row % 6
        ids = torch.randperm(n_features, generator=generator)[: 1 + row % 2]
        if kind == 0:  # keeps a few features
            keep = torch.zeros(n_features)
            keep[ids] = 1.0
        elif kind == 1:  # removes a few
            keep = torch.ones(n_features)
            keep[ids] = 0.0
        elif kind == 2:  # many features: a random half
            keep = (torch.rand(n_features, generator=generator) < 0.5).float()
        elif kind == 3:  # fractional values interpolate the spectra
            keep = torch.rand(n_features, generator=generator)
        elif kind == 4:  # a prefix of the features (a band of the spectrum)
            keep = (torch.arange(n_features) < n_features // 3).float()
        else:  # everything, or nothing
            keep = torch.full((n_features,), float(row % 4 == 1))
        rows.append(keep)
    return torch.stack(rows)


def _assert_same_waveforms(got, want, clip):
    peak = clip.abs().max()
    for g, w in zip(got, want):
        error = (g - w).abs().max()
        bound = RELATIVE * w.abs().max() + FLOOR * peak
        assert error <= bound, f"auto differs from reference by {float(error):.3g} > {float(bound):.3g}"


def _synthesis_spaces(case):
    make, baseline, kwargs = SYNTHESIS_CASES[case]
    torch.manual_seed(11)
    x = make()
    base = baseline() if baseline is not None else None
    spaces = {s: _space(x, base, synthesis=s, **kwargs) for s in ("auto", "reference")}
    return x, spaces["auto"], spaces["reference"]


@pytest.mark.parametrize("n_rows", [1, 2, 7, "above a transform call"])
@pytest.mark.parametrize("case", sorted(SYNTHESIS_CASES))
def test_auto_synthesis_equals_the_reference_formula(case, n_rows):
    x, auto, reference = _synthesis_spaces(case)
    assert reference.synthesis == "reference" and auto.synthesis == "auto"
    assert reference.few_bin_limits == (0,)
    # The speed-ups are really on: few-bin products for rfft grids of this length (not STFT cells).
    assert auto.few_bin_limits == ((0,) if case == "stft cells" else (16,))
    chunked = n_rows == "above a transform call"
    if chunked:
        n_rows = auto.rows_per_transform() + 3
    keep = _keep_rows(n_rows, auto.n_features, torch.Generator().manual_seed(n_rows))
    # The second example: the spaces index their batch the same way.
    _assert_same_waveforms(auto.mutants(1, keep)[0], reference.mutants(1, keep)[0], x[1])
    if chunked and case != "bins, noise baseline":
        return  # per-bin keep values share the chunking just checked; one case of them suffices
    # Per-bin keep values, one example per row (what FrequencyForward synthesises).
    examples = torch.arange(n_rows) % 2
    grid_keep = auto.to_grid(keep)
    got = auto.grid_mutants(examples, grid_keep)[0]
    want = reference.grid_mutants(examples, grid_keep)[0]
    _assert_same_waveforms(got, want, x.abs().max())


def test_reference_synthesis_is_the_formula_as_written():
    torch.manual_seed(5)
    x, base = torch.randn(2, LONG), torch.randn(LONG)
    space = _space(x, base, synthesis="reference")
    keep = torch.zeros(3, space.n_features)
    keep[0, [10, 2000]] = 1.0  # two bins: "auto" would use a matrix product
    keep[1] = torch.rand(space.n_features)
    keep[2] = 1.0
    X, Xb = torch.fft.rfft(x[0]), torch.fft.rfft(base)
    expected = torch.fft.irfft(keep * X + (1 - keep) * Xb, n=LONG)
    # Equal up to the rounding of differently batched FFTs.
    torch.testing.assert_close(space.mutants(0, keep)[0], expected, atol=1e-5, rtol=0)


def test_unknown_synthesis_names_the_choices(detector):
    x = torch.randn(1, 64)
    for bad in ("fast", None, "Reference"):
        with pytest.raises(ValueError, match="synthesis must be one of 'auto', 'reference'"):
            _space(x, synthesis=bad)
    with pytest.raises(ValueError, match="synthesis must be one of 'auto', 'reference', got 'exact'"):
        FreqReX(detector, synthesis="exact")
    with pytest.raises(ValueError, match="synthesis must be one of"):
        FrequencyForward(detector, x, synthesis="fft")
    assert FreqReX(detector, synthesis="reference").synthesis == "reference"
    assert FrequencyForward(detector, x, synthesis="reference").space.synthesis == "reference"


@pytest.mark.parametrize("channels", [1, 2])
def test_a_mutant_synthesised_alone_is_the_one_synthesised_in_a_batch_bit_for_bit(channels):
    """A single inverse FFT takes another path than a batch on the CPU (and rounds differently):
    one mutant alone, and the same mutant among others, give the same waveform, bit for bit, at a
    length where that path differs (16,000 samples: 8,001 bins, above the few-bin limit)."""
    g = torch.Generator().manual_seed(5)
    x = torch.randn(1, channels, 16000, generator=g)
    space = _space(x)
    keep = (torch.rand(6, space.n_features, generator=g) > 0.5).float()
    together = space.mutants(0, keep)[0]
    for row in range(keep.shape[0]):
        assert torch.equal(space.mutants(0, keep[row : row + 1])[0][0], together[row])


@pytest.mark.parametrize("shape", [(16000,), (1, 16000), (1, 1, 48000)])
def test_a_clip_analysed_alone_has_the_spectrum_it_has_in_a_batch_bit_for_bit(shape):
    """A lone forward FFT is rounded differently from a batch's rows too: a clip explained alone
    gets the spectrum it gets among others, bit for bit (its energies break ranking ties, so one
    held-out speech clip's complete set took other bins alone than in a batch)."""
    from captum_freqrex._core.spectral.domains import RfftDomain

    g = torch.Generator().manual_seed(11)
    batch = torch.randn((3,) + shape[-1:], generator=g)
    alone = RfftDomain().analyze(batch[1].reshape(shape))
    assert alone.shape == shape[:-1] + (shape[-1] // 2 + 1,)
    assert torch.equal(alone.reshape(-1), RfftDomain().analyze(batch)[1])


def test_a_lone_spectrum_past_the_pairing_bound_gets_a_lone_inverse_fft():
    """Beyond PAIRED_IRFFT_MAX_SAMPLES a second row costs more than the set-up it saves (and its
    memory): a lone spectrum gets torch's own lone transform; below the bound, the first row of a
    pair."""
    from captum_freqrex._core.spectral.domains import PAIRED_IRFFT_MAX_SAMPLES, RfftDomain

    g = torch.Generator().manual_seed(7)
    for length in (PAIRED_IRFFT_MAX_SAMPLES, PAIRED_IRFFT_MAX_SAMPLES + 2):
        spectrum = torch.randn(1, length // 2 + 1, dtype=torch.complex64, generator=g)
        expected = torch.fft.irfft(spectrum.expand(2, -1) if length <= PAIRED_IRFFT_MAX_SAMPLES else spectrum, n=length)[:1]
        assert torch.equal(RfftDomain().synthesize(spectrum, length), expected)


# ------------------------------------------------------------------ one example of a batch


@pytest.mark.parametrize("synthesis", ["auto", "reference"])
@pytest.mark.parametrize("baseline", ["shared", "per-example"])
def test_selected_example_gives_the_batch_spaces_mutants_bit_for_bit(synthesis, baseline):
    g = torch.Generator().manual_seed(3)
    x = torch.randn(4, 2, 300, generator=g)
    base = torch.randn(300, generator=g) if baseline == "shared" else torch.randn(4, 2, 300, generator=g)
    space = _space(x, base, synthesis=synthesis)
    keep = (torch.rand(5, space.n_features, generator=g) > 0.5).float()
    keep[0] = 0.0
    keep[0, 3] = 1.0  # a mutant of one feature
    for example in range(4):
        one = space.select(example)
        assert one.batch_size == 1 and one.n_features == space.n_features
        assert torch.equal(one.mutants(0, keep)[0], space.mutants(example, keep)[0])
        assert torch.equal(one.baseline_waveforms(0)[0], space.baseline_waveforms(example)[0])
        assert torch.equal(one.feature_energy(0), space.feature_energy(example))
        assert torch.equal(one.delta_waveforms(0, keep)[0], space.delta_waveforms(example, keep)[0])
    with pytest.raises(IndexError, match="example 4 is out of range for a batch of 4"):
        space.select(4)


def test_selected_space_holds_one_examples_spectra_not_a_view_of_the_batch():
    x = torch.randn(6, 1000, generator=torch.Generator().manual_seed(4))
    space = _space(x, torch.randn(6, 1000, generator=torch.Generator().manual_seed(5)))
    one = space.select(2)
    for part in one._inputs:
        for coefficients in (part.delta, part.base):
            assert coefficients.shape[0] == 1
            # Its own storage, one example's worth: keeping it does not keep the batch alive.
            assert coefficients.untyped_storage().nbytes() == coefficients.numel() * coefficients.element_size()
