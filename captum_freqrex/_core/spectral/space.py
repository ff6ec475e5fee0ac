"""The frequency mask mechanism: spectra, feature ids, and mutants built from keep-masks.

A :class:`FeatureSpace` binds a domain to a batch of waveforms. For example ``b`` and a keep-mask
``m`` over features it builds the mutant ``synthesize(m * X + (1 - m) * Xb)`` where ``X`` is the
example's spectrum and ``Xb`` the baseline's. Everything stays on the input's device.

That formula is the reference (``synthesis="reference"``). The default (``"auto"``) computes the
same waveforms faster where it can: mutants and parts of a few bins of a long clip as small matrix
products (``few_bins``), and a refinement step's mutants as sums of part waveforms
(``step_synthesis``). The two agree up to float rounding; the tests hold them to it.
"""

from __future__ import annotations

import copy
import math
from array import array
from dataclasses import dataclass, replace
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor

from captum_freqrex._core.spectral.domains import RfftDomain, SpectralDomain, check_domain
from captum_freqrex._utils.validation import as_tuple


#: A half-open range ``[lo, hi)`` of feature ids.
Range = Tuple[int, int]

#: Most waveform bytes per inverse-transform call on the CPU. A call has a fixed set-up cost (about
#: 3 ms at 480,000 samples), so rows are batched; but glibc serves allocations of 32 MiB and more
#: straight from the operating system, and faulting those pages in costs about as much as the
#: transform (measured at 480,000 samples on 2 cores: 0.92 ms per row in calls of 15 rows, 1.60 ms
#: in calls of 20, 0.85 ms in calls of 20 with ``MALLOC_MMAP_THRESHOLD_`` raised).
CPU_TRANSFORM_BYTES = 24 * 1024**2

#: How mutants are synthesised: ``"auto"`` uses the speed-ups where they apply, ``"reference"``
#: the plain formula for every mutant.
SYNTHESIS = ("auto", "reference")


def check_synthesis(synthesis: object) -> str:
    """``synthesis`` if it is one of :data:`SYNTHESIS`; a ``ValueError`` listing them otherwise."""
    if not isinstance(synthesis, str) or synthesis not in SYNTHESIS:
        raise ValueError(
            f"synthesis must be one of {', '.join(map(repr, SYNTHESIS))}, got {synthesis!r}: \"auto\" "
            "(the default) synthesises mutants with the speed-ups, \"reference\" with the plain formula "
            "irfft(m * X + (1 - m) * Xb)"
        )
    return synthesis


def ranges_to_mask(rows: Sequence[Sequence[Range]], n_features: int, device: torch.device) -> Tensor:
    r"""Keep-masks ``(len(rows), n_features)`` (float 0/1) from disjoint feature ranges per row."""
    diff = torch.zeros(len(rows), n_features + 1, device=device)
    row_ids, starts, stops = [], [], []
    for r, ranges in enumerate(rows):
        for lo, hi in ranges:
            row_ids.append(r)
            starts.append(lo)
            stops.append(hi)
    if row_ids:
        index = torch.tensor(row_ids, device=device)
        ones = torch.ones(len(row_ids), device=device)
        diff.index_put_((index, torch.tensor(starts, device=device)), ones, accumulate=True)
        diff.index_put_((index, torch.tensor(stops, device=device)), -ones, accumulate=True)
    return diff.cumsum(dim=1)[:, :n_features]


def ids_to_mask(
    sets: Sequence[Union[Sequence[int], Tensor]], n_features: int, device: torch.device,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    r"""Keep-masks ``(len(sets), n_features)`` (0/1 of ``dtype``: float by default, ``torch.bool``
    for masks that only name their members) from feature ids, one row per set: a list of ids or a
    1-D integer tensor of them (a slice of a ranking, say: no list to convert)."""
    masks = torch.zeros(len(sets), n_features, device=device, dtype=dtype)
    for row, ids in enumerate(sets):
        if isinstance(ids, Tensor):
            index = ids.long()
        else:
            # Through an int64 array: about twice as fast as torch.tensor on lists of ~10^5 ids
            # (and still about 3 ms per 2 x 10^5 ids: hot paths pass tensors).
            index = torch.frombuffer(array("q", ids), dtype=torch.long) if len(ids) else torch.zeros(0, dtype=torch.long)
        masks[row, index.to(device)] = 1
    return masks


def loudest_order(energy: Tensor) -> Tensor:
    r"""Feature ids by descending ``energy`` ``(n_features,)``, ties by ascending id (a stable sort
    in float64, on the CPU): the one loudest-first order of every stage that reads it."""
    return torch.sort(energy.double().cpu(), descending=True, stable=True).indices


def _scale(keep: Tensor, coefficients: Tensor, out: Optional[Tensor] = None) -> Tensor:
    """``keep * coefficients`` for real keep ``(N, 1 or C, *grid)`` and complex ``(C, *grid)``.

    Multiplies through the real view of the complex tensor: about twice as fast as complex
    broadcasting, which matters for 240,001-bin spectra. ``out``: a real ``(N, C, *grid, 2)``
    tensor to write the product into (the same values as a fresh one), the real and the imaginary
    parts as two strided products: up to 40% faster than one product broadcast over the pairs on
    spectra of 10^4 bins, about as fast on longer ones.
    """
    real = torch.view_as_real(coefficients)
    if out is None:
        return torch.view_as_complex(keep.unsqueeze(-1) * real)
    torch.mul(keep, real[..., 0], out=out[..., 0])
    torch.mul(keep, real[..., 1], out=out[..., 1])
    return torch.view_as_complex(out)


@dataclass
class _InputSpectrum:
    """Spectra of one input tensor: per-example shape, the batch's coefficients and feature ids."""

    example_shape: torch.Size  # (time,) or (channels, time)
    base: Tensor  # (B or 1, C, *grid) complex: baseline coefficients
    delta: Tensor  # (B, C, *grid) complex: X - Xb
    ids: Tensor  # (1 or C, *grid) long, global feature ids
    feature_grid: Tuple[int, ...]  # attribution shape per example: grid or (C, *grid)
    base_is_zero: bool
    offset: Optional[int] = None  # set when ids are offset + arange: keep-masks need no gather
    # Set when the flattened ids are sorted, so every feature is one run of bins: feature f holds
    # flattened bins [bin_starts[f], bin_starts[f + 1]). CPU, (n_features + 1,).
    bin_starts: Optional[Tensor] = None
    # (B, C, *grid) complex: the examples' own spectra X, kept for the reference synthesis only
    # (the fast paths work from base and delta).
    spectrum: Optional[Tensor] = None

    def grid_keep(self, keep: Tensor) -> Tensor:
        """Per-bin keep values ``(N, 1 or C, *grid)`` from per-feature ``(N, n_features)``."""
        if self.offset is not None:
            return keep[:, self.offset : self.offset + self.ids.numel()].reshape((-1,) + tuple(self.ids.shape))
        return keep[:, self.ids]

    def base_coefficients(self, example: int) -> Tensor:
        return self.base[example if self.base.shape[0] > 1 else 0]

    def coefficients(self, example: int, grid_keep: Tensor, out: Optional[Tensor] = None) -> Tensor:
        """Mutant coefficients ``(N, C, *grid)`` from per-bin keep values ``(N, 1 or C, *grid)``
        (written into ``out``, a real ``(N, C, *grid, 2)`` buffer, when given)."""
        if self.spectrum is not None:
            return reference_coefficients(grid_keep, self.spectrum[example], self.base_coefficients(example))
        scaled = _scale(grid_keep, self.delta[example], out)
        if self.base_is_zero:
            return scaled
        base = self.base_coefficients(example)
        return scaled + base if out is None else scaled.add_(base)


def reference_coefficients(keep: Tensor, spectrum: Tensor, base: Tensor) -> Tensor:
    r"""The reference mutant spectrum ``keep * X + (1 - keep) * Xb``, as written.

    Args:
        keep (Tensor): ``(N, 1 or C, *grid)`` real per-bin keep values.
        spectrum (Tensor): ``(N or 1, C, *grid)`` or ``(C, *grid)`` complex ``X``.
        base (Tensor): Complex ``Xb``, broadcastable like ``spectrum``.

    Returns:
        Tensor: ``(N, C, *grid)`` complex coefficients.
    """
    return keep * spectrum + (1 - keep) * base


class FeatureSpace:
    r"""Frequency features of a batch of waveforms and the mutants built from them.

    Args:
        inputs (tuple of Tensor): Validated waveforms, each ``(B, T)`` or ``(B, C, T)``.
        baselines (tuple of Tensor): Baseline waveforms broadcastable to each input.
        feature_mask (Tensor or tuple of Tensor, optional): Integer ids grouping bins into features,
                    broadcastable to each input's feature grid. Default: one feature per bin.
        domain (SpectralDomain, optional): The transform. Default: :class:`RfftDomain`.
        per_channel (bool, optional): One feature grid per channel instead of shared across channels.
                    Default: False
        synthesis (str, optional): How mutants are synthesised. ``"reference"``: every mutant
                    is ``synthesize(m * X + (1 - m) * Xb)``, one inverse transform per mutant
                    row, exactly the formula above. ``"auto"``: the same waveforms up to float
                    rounding (differences below 1e-6 of the clip's peak in float32), faster on
                    the CPU: mutants and refinement parts of a few bins of a long clip (262,144
                    samples or more) are small matrix products instead of inverse FFTs, and a
                    refinement step's mutants are sums of its parts' waveforms. Use
                    ``"reference"`` to check a result against the plain formula or to rule the
                    speed-ups out when debugging. Default: ``"auto"``
    """

    def __init__(
        self,
        inputs: Sequence[Tensor],
        baselines: Sequence[Tensor],
        feature_mask: Optional[object] = None,
        domain: Optional[SpectralDomain] = None,
        per_channel: bool = False,
        synthesis: str = "auto",
    ) -> None:
        self.synthesis = check_synthesis(synthesis)
        reference = self.synthesis == "reference"
        self.domain = check_domain(domain) or RfftDomain()
        self.batch_size = inputs[0].shape[0]
        self.per_channel = per_channel
        self.device = inputs[0].device
        parts = []
        for wave, base in zip(inputs, baselines):
            wave3 = wave if wave.dim() == 3 else wave.unsqueeze(1)
            base3 = base if base.dim() == 3 else base.unsqueeze(1)
            coeffs = self.domain.analyze(wave3)
            base_coeffs = self.domain.analyze(base3.expand(base3.shape[0], wave3.shape[1], -1))
            grid = tuple(coeffs.shape[2:])
            channel_grid = (wave3.shape[1],) if per_channel and wave.dim() == 3 else ()
            parts.append((wave.shape[1:], coeffs, base_coeffs, channel_grid + grid, grid, bool((base == 0).all())))
        masks = self._resolve_masks(feature_mask, [p[3] for p in parts])
        self._inputs: List[_InputSpectrum] = []
        for (shape, coeffs, base_coeffs, feature_grid, grid, zero), ids in zip(parts, masks):
            ids = ids.reshape((-1,) + grid) if len(feature_grid) > len(grid) else ids.reshape((1,) + grid)
            first = int(ids.reshape(-1)[0])
            contiguous = bool((ids.reshape(-1) == torch.arange(first, first + ids.numel())).all())
            self._inputs.append(
                _InputSpectrum(
                    shape,
                    base_coeffs,
                    coeffs - base_coeffs,
                    ids.to(self.device),
                    feature_grid,
                    zero,
                    first if contiguous else None,
                    spectrum=coeffs if reference else None,
                )
            )
        self.n_features = int(max(int(ids.max()) for ids in masks) + 1)
        for part in self._inputs:
            flat = part.ids.reshape(-1).cpu()
            if bool((flat[1:] >= flat[:-1]).all()):
                part.bin_starts = torch.searchsorted(flat, torch.arange(self.n_features + 1))
        # Zeroed spectrum buffers of part_waveforms, one per input: each call writes its runs of
        # bins and zeroes them again, instead of allocating and clearing a whole grid per part.
        self._part_spectra: List[Optional[Tensor]] = [None] * len(self._inputs)
        # Bins below which a part or a mutant is synthesised as a matrix product (1-D grids only;
        # never for the reference synthesis).
        self._few_bin_limits = [
            0 if reference or len(p.ids.shape) != 2 else self.domain.few_coefficient_limit(p.example_shape[-1], self.device)
            for p in self._inputs
        ]
        # Per input, (example, baseline, input) waveforms of the last example that needed them.
        self._anchors: Dict[int, Tuple[int, Tensor, Tensor]] = {}
        # Per input, a reused real buffer for the spectra of mutants (see _spectrum_rows).
        self._mutant_spectra: List[Optional[Tensor]] = [None] * len(self._inputs)
        # (example, energy, loudest first) of the last example asked: every stage of an example's
        # explanation reads its energy, and the sort of a 30 s clip's takes some 20 ms.
        self._energy: Optional[Tuple[int, Tensor, Optional[Tensor]]] = None

    def select(self, example: int) -> "FeatureSpace":
        r"""The feature space of one example of the batch, holding only that example's spectra.

        Same domain, feature ids, synthesis and few-bin limits: ``select(b).mutants(0, keep)``
        equals ``mutants(b, keep)`` bit for bit. The spectra are copied, not viewed, so that a
        result that keeps the one-example space (an :class:`~captum_freqrex.Explanation`) does not
        keep the whole batch's spectra alive.

        Args:
            example (int): Index of the example in the batch.

        Returns:
            FeatureSpace: A space of batch size 1; its example 0 is ``example``.

        Raises:
            IndexError: When ``example`` is not in ``[0, batch_size)``.
        """
        if not 0 <= example < self.batch_size:
            raise IndexError(f"example {example} is out of range for a batch of {self.batch_size}")
        one = copy.copy(self)  # domain, ids, limits are shared: none of them grows with the batch
        one.batch_size = 1
        one._inputs = [
            replace(
                part,
                base=part.base if part.base.shape[0] == 1 else part.base[example : example + 1].clone(),
                delta=part.delta[example : example + 1].clone(),
                spectrum=None if part.spectrum is None else part.spectrum[example : example + 1].clone(),
            )
            for part in self._inputs
        ]
        one._part_spectra = [None] * len(one._inputs)
        one._anchors = {}
        one._mutant_spectra = [None] * len(one._inputs)
        one._energy = None
        return one

    @staticmethod
    def _resolve_masks(feature_mask: Optional[object], grids: List[Tuple[int, ...]]) -> List[Tensor]:
        if feature_mask is None:
            offsets = [0]
            for grid in grids:
                offsets.append(offsets[-1] + math.prod(grid))
            return [torch.arange(o, o + math.prod(g)).reshape(g) for o, g in zip(offsets, grids)]
        masks = as_tuple(feature_mask)
        if len(masks) != len(grids):
            raise ValueError(f"feature_mask has {len(masks)} tensors but inputs has {len(grids)}")
        expanded = []
        for i, (mask, grid) in enumerate(zip(masks, grids)):
            if not isinstance(mask, Tensor) or mask.is_floating_point() or mask.is_complex():
                raise TypeError(f"feature_mask[{i}] must be an integer tensor of feature ids")
            mask = mask.cpu()
            while mask.dim() > len(grid) and mask.shape[0] == 1:
                mask = mask[0]  # a leading batch dimension of one, as Captum masks often have
            try:
                expanded.append(mask.expand(grid).contiguous())
            except RuntimeError:
                hint = (
                    "; it has a channel dimension: pass per_channel=True"
                    if mask.dim() > len(grid)
                    else ""
                )
                raise ValueError(
                    f"feature_mask[{i}] of shape {tuple(mask.shape)} does not broadcast to the "
                    f"feature grid {grid} (one id per frequency bin{', per channel' if len(grid) > 1 else ''})"
                    f"{hint}; build one with captum_freqrex.linear_bands/log_bands/mel_bands"
                ) from None
            if (expanded[-1] < 0).any():
                raise ValueError(f"feature_mask[{i}] holds negative ids; use ids 0, 1, 2, ...")
        # Captum semantics: equal ids in different inputs are one feature. Relabel to 0..n-1 in id order.
        flat = torch.cat([m.flatten() for m in expanded])
        labels = torch.unique(flat, return_inverse=True)[1]
        return list(labels.split([m.numel() for m in expanded]))

    @property
    def feature_grids(self) -> Tuple[Tuple[int, ...], ...]:
        """Per input, the shape of one example's attribution: ``(*grid)`` or ``(C, *grid)``."""
        return tuple(p.feature_grid for p in self._inputs)

    @property
    def example_shapes(self) -> Tuple[torch.Size, ...]:
        """Per input, the shape of one example's waveform: ``(T,)`` or ``(C, T)``."""
        return tuple(p.example_shape for p in self._inputs)

    @property
    def few_bin_limits(self) -> Tuple[int, ...]:
        """Per input, most bins a mutant or part may keep (or remove) to be synthesised as a matrix
        product instead of an inverse transform; 0 where it never is (``synthesis="reference"``,
        short clips, GPUs, STFT cells)."""
        return tuple(self._few_bin_limits)

    @property
    def dtype(self) -> torch.dtype:
        """The real dtype of the waveforms (and of keep-masks and attributions over the grid)."""
        return self._inputs[0].delta.real.dtype

    def ids(self) -> Tuple[Tensor, ...]:
        """Per input, the global feature id of every bin, shaped like the feature grid."""
        return tuple(p.ids.reshape(p.feature_grid) for p in self._inputs)

    def rows_per_transform(self) -> int:
        """Most waveforms per inverse-transform call: bounded by :data:`CPU_TRANSFORM_BYTES` on CPU.

        Unbounded on other devices, and for waveforms larger than the bound: one of those already
        comes from the operating system, so splitting the batch would only repeat the set-up.
        """
        row_bytes = sum(math.prod(p.example_shape) for p in self._inputs) * self.dtype.itemsize
        if self.device.type != "cpu" or row_bytes > CPU_TRANSFORM_BYTES:
            return 2**31 - 1
        return CPU_TRANSFORM_BYTES // row_bytes

    def _synthesize(self, part: _InputSpectrum, coeffs: Tensor) -> Tensor:
        wave = self.domain.synthesize(coeffs, part.example_shape[-1])
        return wave.reshape((wave.shape[0],) + tuple(part.example_shape))

    def _in_chunks(self, n_rows: int, build: Callable[[int, int], Tuple[Tensor, ...]]) -> Tuple[Tensor, ...]:
        # Spectra and waveforms of at most rows_per_transform() rows at a time. No rows need no
        # transform (MKL refuses an empty batch).
        if n_rows == 0:
            return tuple(
                torch.empty((0,) + tuple(p.example_shape), dtype=self.dtype, device=self.device) for p in self._inputs
            )
        limit = self.rows_per_transform()
        chunks = [build(lo, min(lo + limit, n_rows)) for lo in range(0, n_rows, limit)]
        return chunks[0] if len(chunks) == 1 else tuple(torch.cat(pieces) for pieces in zip(*chunks))

    def mutants(
        self, example: int, keep: Tensor, out: Optional[Sequence[Tensor]] = None
    ) -> Tuple[Tensor, ...]:
        r"""Waveforms of mutants of one example.

        With ``synthesis="auto"``, a mutant that keeps or removes only a few bins of a long clip
        is the baseline plus, or the input minus, the waveform of those bins, synthesised as a
        small matrix product (see ``few_bins``); the others go through the domain's inverse
        transform. With ``"reference"`` every mutant is ``synthesize(m * X + (1 - m) * Xb)``.

        Args:
            example (int): Index of the example in the batch.
            keep (Tensor): ``(N, n_features)`` keep values; 1 keeps a feature, 0 sets it to the
                        baseline; fractional values interpolate the spectra.
            out (sequence of Tensor, optional): Per input, ``(N, *example_shape)`` tensors to
                        write the waveforms into. Default: None (new tensors)

        Returns:
            tuple of Tensor: Per input, ``(N, *example_shape)`` waveforms.
        """
        keep = keep.to(self.dtype)
        n_rows = keep.shape[0]
        if out is None:
            out = tuple(
                torch.empty((n_rows,) + tuple(p.example_shape), dtype=self.dtype, device=self.device)
                for p in self._inputs
            )
        # With keep values in [0, 1] a row keeping k features sums to at most k, so one sum per row
        # rules out most rows for few-bin synthesis; counting nonzeros over the whole batch would
        # cost more than the transforms it saves.
        totals = keep.sum(dim=1).tolist() if any(self._few_bin_limits) else []
        limit = self.rows_per_transform()
        for index, (part, target) in enumerate(zip(self._inputs, out)):
            transformed = self._few_bin_mutants(index, example, keep, totals, target)
            for lo in range(0, len(transformed), limit):
                rows = transformed[lo : lo + limit]
                first, n_rows = rows[0], len(rows)
                spectra = self._spectrum_rows(index, n_rows)
                if rows[-1] - first == n_rows - 1 and target.is_contiguous():
                    # Consecutive rows (the usual case): transformed straight into the target rows.
                    rows_keep = part.grid_keep(keep[first : first + n_rows])
                    coefficients = part.coefficients(example, rows_keep, spectra)
                    self.domain.synthesize_into(coefficients, part.example_shape[-1], target[first : first + n_rows])
                    continue
                waves = self._synthesize(part, part.coefficients(example, part.grid_keep(keep[rows]), spectra))
                target.index_copy_(0, torch.tensor(rows, device=self.device), waves)
        return tuple(out)

    def _spectrum_rows(self, index: int, n_rows: int) -> Optional[Tensor]:
        # A reused real (n_rows, C, *grid, 2) buffer for the mutant spectra of input ``index``:
        # fresh spectra of a long clip are allocations from the operating system, whose page faults
        # cost about as much as the products written into them. Only where rows_per_transform()
        # bounds the batch (CPU, rows below CPU_TRANSFORM_BYTES), so the buffer stays small; None
        # (fresh tensors) otherwise and for the reference synthesis.
        part = self._inputs[index]
        if part.spectrum is not None or self.rows_per_transform() == 2**31 - 1:
            return None
        shape = (n_rows, part.delta.shape[1]) + tuple(part.delta.shape[2:]) + (2,)
        buffer = self._mutant_spectra[index]
        if buffer is None or buffer.shape[0] < n_rows:
            buffer = self._mutant_spectra[index] = part.delta.real.new_empty((max(n_rows, 1),) + shape[1:])
        return buffer[:n_rows]

    def _few_bin_mutants(
        self, index: int, example: int, keep: Tensor, totals: List[float], target: Tensor
    ) -> List[int]:
        # Writes the rows that keep or remove at most the few-bin limit of bins; returns the others.
        if self._few_bin_limits[index] == 0:
            return list(range(keep.shape[0]))
        return [
            row
            for row, total in enumerate(totals)
            if not self._few_bin_mutant(index, example, keep[row : row + 1], total, target[row])
        ]

    def _few_bin_mutant(self, index: int, example: int, keep: Tensor, total: float, out: Tensor) -> bool:
        # One mutant as the baseline plus the kept bins' share of X - Xb, or the input minus the
        # removed bins' share, when those bins are few. False, with nothing written, otherwise.
        part, limit = self._inputs[index], self._few_bin_limits[index]
        if min(total, keep.shape[1] - total) > limit:
            return False
        grid_keep = part.grid_keep(keep)[0]  # (1 or C, bins)
        delta = part.delta[example]
        kept = (grid_keep != 0).any(dim=0).nonzero().squeeze(1)
        if kept.numel() <= limit:
            self._few_bin_waveform(part, kept, grid_keep[:, kept] * delta[:, kept], out)
            if not part.base_is_zero:
                out.add_(self._anchor_waveforms(index, example)[0])
            return True
        removed = (grid_keep != 1).any(dim=0).nonzero().squeeze(1)
        if removed.numel() <= limit:
            self._few_bin_waveform(part, removed, (1 - grid_keep[:, removed]) * delta[:, removed], out)
            torch.sub(self._anchor_waveforms(index, example)[1], out, out=out)
            return True
        return False

    def _anchor_waveforms(self, index: int, example: int) -> Tuple[Tensor, Tensor]:
        # The baseline and the input of one example as synthesised from their spectra (cached).
        if self._anchors.get(index, (None,))[0] != example:
            part = self._inputs[index]
            base = part.base_coefficients(example)
            waves = self._synthesize(part, torch.stack([base, base + part.delta[example]]))
            self._anchors[index] = (example, waves[0], waves[1])
        return self._anchors[index][1], self._anchors[index][2]

    def _few_bin_waveform(self, part: _InputSpectrum, bins: Tensor, coefficients: Tensor, out: Tensor) -> None:
        # Waveform (*example_shape) of coefficients (C, L) that are zero except at bins (L,).
        length = part.example_shape[-1]
        self.domain.synthesize_few(bins, coefficients, length, out.view(-1, length))

    def delta_waveforms(self, example: int, keep: Tensor) -> Tuple[Tensor, ...]:
        r"""The kept part of the difference to the baseline: ``synthesize(m * (X - Xb))``.

        Every domain here is linear, so a mutant equals ``baseline + sum`` of the delta waveforms
        of disjoint parts of its keep-mask; the refinement uses this to synthesise a step's 15
        mutants from 5 inverse transforms.

        Args:
            example (int): Index of the example in the batch.
            keep (Tensor): ``(N, n_features)`` keep values.

        Returns:
            tuple of Tensor: Per input, ``(N, *example_shape)``.
        """
        keep = keep.to(self.dtype)
        return self._in_chunks(
            keep.shape[0],
            lambda lo, hi: tuple(
                self._synthesize(part, _scale(part.grid_keep(keep[lo:hi]), part.delta[example]))
                for part in self._inputs
            ),
        )

    def part_waveforms(self, example: int, parts: Sequence[Sequence[Range]]) -> Tuple[List[Tensor], ...]:
        r"""Delta waveforms of parts given as feature ranges: :meth:`delta_waveforms` of their masks.

        When every feature is one run of bins (sorted ids: the default one feature per bin, bands
        from :func:`linear_bands` and friends, the STFT's cells), a part's spectrum is a few slice
        copies of the example's spectrum instead of a mask multiplied over the whole grid, and a
        part of a few bins of a long clip is a small matrix product instead of an inverse FFT.

        Args:
            example (int): Index of the example in the batch.
            parts (sequence): Per part, disjoint ``(lo, hi)`` ranges of feature ids.

        Returns:
            tuple of list: Per input, one ``(*example_shape)`` waveform per part.
        """
        if any(p.bin_starts is None for p in self._inputs):
            waves = self.delta_waveforms(example, ranges_to_mask(parts, self.n_features, self.device))
            return tuple(list(w) for w in waves)
        ends = torch.tensor([r for ranges in parts for r in ranges], dtype=torch.long).reshape(-1, 2)
        rows = [row for row, ranges in enumerate(parts) for _ in ranges]
        return tuple(self._part_rows(index, example, len(parts), rows, ends) for index in range(len(self._inputs)))

    def _part_rows(self, index: int, example: int, n_parts: int, rows: List[int], ends: Tensor) -> List[Tensor]:
        part = self._inputs[index]
        assert part.bin_starts is not None
        runs: List[List[Range]] = [[] for _ in range(n_parts)]
        for row, (b0, b1) in zip(rows, part.bin_starts[ends].tolist()):
            if b1 > b0:
                runs[row].append((b0, b1))
        source = part.delta[example].reshape(-1, part.ids.numel())  # (C or 1, bins of the ids)
        limit = self._few_bin_limits[index]
        waves: List[Optional[Tensor]] = [None] * n_parts
        transformed = []
        for row, row_runs in enumerate(runs):
            if limit and sum(b1 - b0 for b0, b1 in row_runs) <= limit:
                waves[row] = self._few_bin_part(part, source, row_runs)
            else:
                transformed.append(row)
        step = self.rows_per_transform()
        for lo in range(0, len(transformed), step):
            chunk = transformed[lo : lo + step]
            for row, wave in zip(chunk, self._runs_waveforms(index, part, source, [runs[r] for r in chunk])):
                waves[row] = wave
        return waves  # type: ignore[return-value]

    def _few_bin_part(self, part: _InputSpectrum, source: Tensor, runs: List[Range]) -> Tensor:
        flat = torch.cat([torch.arange(b0, b1) for b0, b1 in runs]) if runs else torch.zeros(0, dtype=torch.long)
        flat = flat.to(self.device)
        if part.ids.shape[0] == 1:
            # Shared features: every channel keeps the same bins.
            bins, coefficients = flat, source[:, flat]
        else:
            # Per-channel features: flattened (channel, bin) positions.
            n_bins = part.delta.shape[-1]
            channel, position = flat // n_bins, flat % n_bins
            bins, column = torch.unique(position, return_inverse=True)
            coefficients = source.new_zeros((part.delta.shape[1], bins.numel()))
            coefficients[channel, column] = source[0, flat]
        wave = torch.empty(part.example_shape, dtype=self.dtype, device=self.device)
        self._few_bin_waveform(part, bins, coefficients, wave)
        return wave

    def _runs_waveforms(
        self, index: int, part: _InputSpectrum, source: Tensor, runs: List[List[Range]]
    ) -> Tensor:
        # Inverse transform of parts whose spectra are runs of bins, via a zeroed spectrum buffer.
        buffer = self._part_spectra[index]
        if buffer is None or buffer.shape[0] < len(runs):
            buffer = self._part_spectra[index] = source.new_zeros((len(runs),) + source.shape)
        for row, row_runs in enumerate(runs):
            for b0, b1 in row_runs:
                buffer[row, :, b0:b1] = source[:, b0:b1]
        try:
            return self._synthesize(part, buffer[: len(runs)].view((len(runs),) + part.delta.shape[1:]))
        finally:
            for row, row_runs in enumerate(runs):
                for b0, b1 in row_runs:
                    buffer[row, :, b0:b1] = 0

    def baseline_waveforms(self, example: int) -> Tuple[Tensor, ...]:
        """Per input, the baseline of one example as a waveform ``(*example_shape)``."""
        return tuple(
            self._synthesize(part, part.base_coefficients(example).unsqueeze(0))[0] for part in self._inputs
        )

    def grid_mutants(self, examples: Tensor, grid_keep: Sequence[Tensor]) -> Tuple[Tensor, ...]:
        r"""Waveforms from per-bin keep values, one row per (example, keep) pair.

        Args:
            examples (Tensor): ``(N,)`` example index of each row.
            grid_keep (sequence of Tensor): Per input, ``(N, *feature_grid)`` keep values.

        Returns:
            tuple of Tensor: Per input, ``(N, *example_shape)`` waveforms.
        """
        return self._in_chunks(
            examples.shape[0],
            lambda lo, hi: tuple(
                self._grid_rows(part, examples[lo:hi], keep[lo:hi]) for part, keep in zip(self._inputs, grid_keep)
            ),
        )

    def _grid_rows(self, part: _InputSpectrum, examples: Tensor, keep: Tensor) -> Tensor:
        keep = keep.reshape((keep.shape[0], -1) + tuple(part.ids.shape[1:]))
        if part.spectrum is not None:
            base = part.base[examples] if part.base.shape[0] > 1 else part.base[0]
            return self._synthesize(part, reference_coefficients(keep, part.spectrum[examples], base))
        coeffs = torch.view_as_complex(keep.unsqueeze(-1) * torch.view_as_real(part.delta[examples]))
        if not part.base_is_zero:
            coeffs = coeffs + (part.base[examples] if part.base.shape[0] > 1 else part.base[0])
        return self._synthesize(part, coeffs)

    def to_grid(self, values: Tensor) -> Tuple[Tensor, ...]:
        r"""Spread per-feature values ``(..., n_features)`` onto each input's bins ``(..., *feature_grid)``."""
        return tuple(
            values[..., part.ids.reshape(-1)].reshape(values.shape[:-1] + part.feature_grid)
            for part in self._inputs
        )

    def from_grid(self, grid_values: Sequence[Tensor]) -> Tensor:
        r"""Per-feature means ``(B, n_features)`` of per-bin values, per input ``(B, *feature_grid)``.

        The inverse of :meth:`to_grid` for values that are constant over each feature, and the way
        any method's per-bin attributions become a ranking of features.
        """
        totals = torch.zeros(self.batch_size, self.n_features, dtype=torch.float64, device=self.device)
        for part, values in zip(self._inputs, grid_values):
            if tuple(values.shape) != (self.batch_size,) + part.feature_grid:
                raise ValueError(
                    f"attributions of shape {tuple(values.shape)} do not match the feature grid "
                    f"{(self.batch_size,) + part.feature_grid}"
                )
            if not torch.isfinite(values).all():
                raise ValueError(
                    "attributions contain NaN or Inf, which cannot be ranked; check the method that "
                    "produced them, or replace them (e.g. torch.nan_to_num(attributions, nan=0.0))"
                )
            ids = part.ids.reshape(-1)
            totals.index_add_(1, ids, values.detach().reshape(self.batch_size, -1).to(self.device, torch.float64))
        return totals / self.feature_sizes().clamp(min=1)

    def feature_sizes(self) -> Tensor:
        """Number of bins (over all inputs and channels of the grid) in each feature, ``(n_features,)``."""
        sizes = torch.zeros(self.n_features, dtype=torch.long, device=self.device)
        for part in self._inputs:
            sizes += torch.bincount(part.ids.reshape(-1), minlength=self.n_features)
        return sizes

    def feature_energy(self, example: int) -> Tensor:
        """Spectral energy ``|X - Xb|^2`` of one example in each feature, ``(n_features,)`` float64
        (the last example's is kept: treat it as read-only)."""
        if self._energy is None or self._energy[0] != example:
            energy = torch.zeros(self.n_features, dtype=torch.float64, device=self.device)
            for part in self._inputs:
                power = part.delta[example].abs().square().double()  # (C, *grid)
                ids = part.ids.expand_as(power).reshape(-1)
                energy.index_add_(0, ids, power.reshape(-1))
            self._energy = (example, energy, None)
        return self._energy[1]

    def loudest_first(self, example: int) -> Tensor:
        """Feature ids of one example by descending :meth:`feature_energy`, ties by ascending id
        (a stable sort; on the CPU; the last example's is kept: treat it as read-only)."""
        energy = self.feature_energy(example)
        assert self._energy is not None
        order = self._energy[2]
        if order is None:
            order = loudest_order(energy)
            self._energy = (example, energy, order)
        return order
