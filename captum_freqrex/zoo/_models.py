"""The zoo's classifiers, plain torch with global pooling.

* :class:`LogMelCNN`: a log-mel front-end and a 2-D CNN over (mel band, frame). Loading needs only
  torch: the mel filterbank is a buffer in the state dict (computed once with
  ``torchaudio.functional.melscale_fbanks`` by :meth:`LogMelCNN.create` when a model is trained).
* :class:`WaveCNN`: a learned filterbank (a strided 1-D convolution of the raw waveform), log frame
  energies and a 1-D CNN over frames: no Fourier transform anywhere, so its view of frequency is
  whatever its filters learned.
"""

from __future__ import annotations

import math
from typing import Any, Dict, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["LogMelCNN", "LogMel", "WaveCNN"]


def _mono(waveforms: Tensor) -> Tensor:
    """``(B, C, T)`` mixed down to ``(B, T)``; ``(B, T)`` as it is."""
    return waveforms.mean(dim=1) if waveforms.dim() == 3 else waveforms


def _pool_over_time(x: Tensor) -> Tensor:
    """``(B, C, frames)`` -> ``(B, 2 C)``: mean and max over frames, concatenated (both zoo CNNs)."""
    return torch.cat([x.mean(dim=2), x.amax(dim=2)], dim=1)


class LogMel(nn.Module):
    r"""Log mel power spectrogram: ``(B, T)`` waveforms -> ``(B, n_mels, frames)``.

    Frames are ``n_fft`` long with a Hann window, ``hop_length`` apart, not centred (no padding),
    so a clip of ``T`` samples has ``1 + (T - n_fft) // hop_length`` frames (the same frames as
    ``torch.stft(..., center=False)``, computed with one batched ``rfft`` and a fused
    power-and-filterbank product, which is about twice as fast on CPU).

    Args:
        n_fft (int): FFT size and window length.
        hop_length (int): Samples between frames.
        n_mels (int): Mel bands.
        fbank (Tensor, optional): ``(n_fft // 2 + 1, n_mels)`` filterbank; None for zeros, to be
                    filled by ``load_state_dict``. Default: None
        eps (float, optional): Floor added to the mel power before the log. Default: 1e-6
    """

    # Buffers registered in __init__, declared for the type checker.
    fbank: Tensor
    window: Tensor

    def __init__(self, n_fft: int, hop_length: int, n_mels: int, fbank: Optional[Tensor] = None, eps: float = 1e-6) -> None:
        super().__init__()
        self.n_fft = n_fft
        self.hop_length = hop_length
        self.eps = eps
        if fbank is None:
            fbank = torch.zeros(n_fft // 2 + 1, n_mels)
        if tuple(fbank.shape) != (n_fft // 2 + 1, n_mels):
            raise ValueError(f"fbank must be ({n_fft // 2 + 1}, {n_mels}), got {tuple(fbank.shape)}")
        self.register_buffer("fbank", fbank.float().contiguous())
        self.register_buffer("window", torch.hann_window(n_fft))

    def forward(self, waveforms: Tensor) -> Tensor:
        r"""Args:
            waveforms (Tensor): ``(B, T)`` float waveforms, ``T >= n_fft``.

        Returns:
            Tensor: ``(B, n_mels, frames)`` log mel power.
        """
        frames = waveforms.unfold(-1, self.n_fft, self.hop_length) * self.window  # (B, frames, n_fft)
        spec = torch.view_as_real(torch.fft.rfft(frames))  # (B, frames, F, 2)
        # Fused power and mel projection: (re^2, im^2) interleaved times the row-repeated filterbank.
        squared = spec.square() if spec.requires_grad else spec.square_()
        mel = torch.matmul(squared.flatten(-2), self.fbank.repeat_interleave(2, dim=0))  # (B, frames, n_mels)
        return torch.log(mel + self.eps).transpose(1, 2)


class _Block(nn.Sequential):
    def __init__(self, cin: int, cout: int, pool: Tuple[int, int]) -> None:
        super().__init__(
            nn.Conv2d(cin, cout, 3, padding=1, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(pool) if pool != (1, 1) else nn.Identity(),
        )


class LogMelCNN(nn.Module):
    r"""Waveforms ``(B, T)`` -> logits ``(B, n_classes)``: log mel, 2-D CNN, global pooling.

    The log mel spectrogram is normalised per mel band (a batch norm, fixed in eval mode), passed
    through ``len(channels)`` blocks of 3x3 convolution, batch norm, ReLU and max pooling, averaged
    over frequency, pooled over time (mean and max, concatenated) and classified by a linear layer.
    Global pooling makes it length-agnostic: it can be trained on short crops and evaluated on
    whole clips. Input ``(B, C, T)`` is mixed down to mono first.

    Args:
        n_classes (int): Number of classes.
        sample_rate (int, optional): Sample rate in Hz (recorded; the filterbank depends on it).
                    Default: 16000
        n_fft (int, optional): FFT size. Default: 1024
        hop_length (int, optional): Hop between frames. Default: 512
        n_mels (int, optional): Mel bands. Default: 64
        channels (sequence of int, optional): Output channels of each conv block.
                    Default: (8, 16, 32, 32)
        pools (sequence of (int, int), optional): Max-pooling (mel, time) after each block.
                    Default: (2, 2) after every block
        dropout (float, optional): Dropout before the linear layer (training only). Default: 0.2
        fbank (Tensor, optional): Mel filterbank ``(n_fft // 2 + 1, n_mels)``; None leaves zeros
                    for ``load_state_dict`` to fill. Default: None
    """

    def __init__(
        self,
        n_classes: int,
        sample_rate: int = 16000,
        n_fft: int = 1024,
        hop_length: int = 512,
        n_mels: int = 64,
        channels: Sequence[int] = (8, 16, 32, 32),
        pools: Optional[Sequence[Sequence[int]]] = None,
        dropout: float = 0.2,
        fbank: Optional[Tensor] = None,
    ) -> None:
        super().__init__()
        pools = [tuple(p) for p in pools] if pools is not None else [(2, 2)] * len(channels)
        if len(pools) != len(channels):
            raise ValueError("pools and channels must have the same length")
        self.sample_rate = sample_rate
        self.config: Dict[str, Any] = {
            "n_classes": n_classes,
            "sample_rate": sample_rate,
            "n_fft": n_fft,
            "hop_length": hop_length,
            "n_mels": n_mels,
            "channels": list(channels),
            "pools": [list(p) for p in pools],
            "dropout": dropout,
        }
        self.frontend = LogMel(n_fft, hop_length, n_mels, fbank)
        self.norm = nn.BatchNorm1d(n_mels)
        blocks, cin = [], 1
        for cout, pool in zip(channels, pools):
            blocks.append(_Block(cin, cout, pool))  # type: ignore[arg-type]
            cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(2 * cin, n_classes)

    @classmethod
    def create(cls, n_classes: int, sample_rate: int = 16000, n_fft: int = 1024, n_mels: int = 64, **kwargs: Any) -> "LogMelCNN":
        r"""A new model with its mel filterbank computed by torchaudio (training time only).

        Args:
            n_classes (int): Number of classes.
            sample_rate (int, optional): Sample rate in Hz. Default: 16000
            n_fft (int, optional): FFT size. Default: 1024
            n_mels (int, optional): Mel bands (HTK scale, 0 Hz to Nyquist, no normalisation).
                        Default: 64
            **kwargs: The other arguments of :class:`LogMelCNN`.

        Returns:
            LogMelCNN: An untrained model in training mode.
        """
        from torchaudio.functional import melscale_fbanks

        fbank = melscale_fbanks(n_fft // 2 + 1, 0.0, sample_rate / 2, n_mels, sample_rate)
        return cls(n_classes, sample_rate=sample_rate, n_fft=n_fft, n_mels=n_mels, fbank=fbank, **kwargs)

    @property
    def min_samples(self) -> int:
        r"""The shortest waveform that leaves the blocks' time pooling one frame: ``n_fft`` samples,
        plus a hop for every further frame the pools need. Shorter ones are zero-padded to it at the end."""
        frames = math.prod(int(pool[1]) for pool in self.config["pools"])
        return self.frontend.n_fft + (frames - 1) * self.frontend.hop_length

    def embed(self, waveforms: Tensor) -> Tensor:
        r"""The pooled features before the linear layer.

        Args:
            waveforms (Tensor): ``(B, T)`` (or ``(B, C, T)``) float32 at :attr:`sample_rate`; shorter
                        than :attr:`min_samples`, zero-padded to it (the instruments model takes
                        clips at their own length: a 0.6 s note would leave its last pooling no
                        frame, and fail).

        Returns:
            Tensor: ``(B, 2 * channels[-1])``: mean and max over time of the last block.
        """
        waveforms = _mono(waveforms)
        if waveforms.shape[-1] < self.min_samples:
            waveforms = F.pad(waveforms, (0, self.min_samples - waveforms.shape[-1]))
        x = self.norm(self.frontend(waveforms)).unsqueeze(1)  # (B, 1, n_mels, frames)
        return _pool_over_time(self.blocks(x).mean(dim=2))  # blocks: (B, C, mels', frames')

    def forward(self, waveforms: Tensor) -> Tensor:
        r"""Args:
            waveforms (Tensor): ``(B, T)`` (or ``(B, C, T)``) float32 at :attr:`sample_rate`.

        Returns:
            Tensor: ``(B, n_classes)`` logits.
        """
        return self.classifier(self.dropout(self.embed(waveforms)))


class _Block1d(nn.Sequential):
    def __init__(self, cin: int, cout: int, kernel_size: int, pool: int) -> None:
        super().__init__(
            nn.Conv1d(cin, cout, kernel_size, padding=kernel_size // 2, bias=False),
            nn.BatchNorm1d(cout),
            nn.ReLU(inplace=True),
            nn.MaxPool1d(pool) if pool > 1 else nn.Identity(),
        )


class WaveCNN(nn.Module):
    r"""Waveforms ``(B, T)`` -> logits ``(B, n_classes)``: learned filterbank, log energy, 1-D CNN.

    The front end is a strided convolution of the raw waveform with ``n_filters`` learned filters
    of ``filter_length`` samples (initialised as Hann-windowed cosines at log-spaced centre
    frequencies from 30 Hz to 0.45 times the sample rate, then trained freely); each filter's
    output is squared and averaged over ``energy_pool`` outputs, so a frame is
    ``stride * energy_pool`` samples, and its log (floor ``eps``) is normalised per filter (a batch
    norm, fixed in eval mode). ``len(channels)`` blocks of 1-D convolution over frames (the filters
    are the input channels), batch norm, ReLU and max pooling follow, then mean and max over time
    (concatenated), dropout and a linear layer. Like :class:`LogMelCNN` it is length-agnostic and
    takes ``(B, C, T)`` (mixed down to mono), but it computes no Fourier transform: the frequency
    selectivity is learned, so it is a differently built model of the same task.

    Args:
        n_classes (int): Number of classes.
        sample_rate (int, optional): Sample rate in Hz (sets the initial filter frequencies).
                    Default: 16000
        n_filters (int, optional): Learned front-end filters. Default: 48
        filter_length (int, optional): Filter length in samples. Default: 256
        stride (int, optional): Samples between filter outputs. Default: 8
        energy_pool (int, optional): Filter outputs averaged into one frame. Default: 20
        channels (sequence of int, optional): Output channels of each 1-D block.
                    Default: (64, 64, 96, 96)
        kernel_size (int, optional): Kernel of the 1-D blocks, in frames (odd). Default: 5
        pool (int, optional): Max pooling over frames after each block. Default: 2
        dropout (float, optional): Dropout before the linear layer (training only). Default: 0.3
        eps (float, optional): Floor added to the frame energy before the log. Default: 1e-6
    """

    def __init__(
        self,
        n_classes: int,
        sample_rate: int = 16000,
        n_filters: int = 48,
        filter_length: int = 256,
        stride: int = 8,
        energy_pool: int = 20,
        channels: Sequence[int] = (64, 64, 96, 96),
        kernel_size: int = 5,
        pool: int = 2,
        dropout: float = 0.3,
        eps: float = 1e-6,
    ) -> None:
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"kernel_size must be odd (same-length convolutions), got {kernel_size}")
        if min(n_filters, filter_length, stride, energy_pool, pool) < 1 or not channels:
            raise ValueError("n_filters, filter_length, stride, energy_pool and pool must be >= 1, channels non-empty")
        self.sample_rate = sample_rate
        self.eps = eps
        # The shortest waveform that leaves the last block's pooling a frame: a frame per pooled
        # block output, each frame energy_pool filter outputs, stride samples apart.
        self.min_samples = filter_length + stride * (energy_pool * pool ** len(channels) - 1)
        self.config: Dict[str, Any] = {
            "n_classes": n_classes,
            "sample_rate": sample_rate,
            "n_filters": n_filters,
            "filter_length": filter_length,
            "stride": stride,
            "energy_pool": energy_pool,
            "channels": list(channels),
            "kernel_size": kernel_size,
            "pool": pool,
            "dropout": dropout,
            "eps": eps,
        }
        self.filters = nn.Conv1d(1, n_filters, filter_length, stride=stride, bias=False)
        with torch.no_grad():
            self.filters.weight.copy_(self.cosine_filters(n_filters, filter_length, sample_rate).unsqueeze(1))
        self.energy_pool = energy_pool
        self.norm = nn.BatchNorm1d(n_filters)
        blocks, cin = [], n_filters
        for cout in channels:
            blocks.append(_Block1d(cin, cout, kernel_size, pool))
            cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(2 * cin, n_classes)

    @staticmethod
    def cosine_filters(n_filters: int, filter_length: int, sample_rate: int) -> Tensor:
        r"""The initial filterbank: Hann-windowed cosines at log-spaced centre frequencies.

        Args:
            n_filters (int): Number of filters.
            filter_length (int): Samples per filter.
            sample_rate (int): Sample rate in Hz.

        Returns:
            Tensor: ``(n_filters, filter_length)``, each filter of unit L2 norm.
        """
        low, high = 30.0, 0.45 * sample_rate
        centres = low * (high / low) ** torch.linspace(0.0, 1.0, n_filters, dtype=torch.float64)
        t = torch.arange(filter_length, dtype=torch.float64) / sample_rate
        window = torch.hann_window(filter_length, periodic=False, dtype=torch.float64)
        bank = window * torch.cos(2 * torch.pi * centres[:, None] * t[None, :])
        return (bank / bank.norm(dim=1, keepdim=True)).float()

    def frontend(self, waveforms: Tensor) -> Tensor:
        r"""Log frame energies of the learned filters, ``(B, T)`` -> ``(B, n_filters, frames)``.

        Args:
            waveforms (Tensor): ``(B, T)`` float waveforms, ``T >= min_samples`` (what the blocks'
                        pooling needs; the front end alone takes fewer).

        Returns:
            Tensor: ``(B, n_filters, frames)``, ``frames = (1 + (T - filter_length) // stride) // energy_pool``.
        """
        if waveforms.shape[-1] < self.min_samples:
            raise ValueError(
                f"WaveCNN needs at least {self.min_samples} samples per waveform (a frame for its last pooling), "
                f"got {waveforms.shape[-1]}; zero-pad the clip to the model's clip length, as it was trained"
            )
        outputs = self.filters(waveforms.unsqueeze(1))  # (B, n_filters, 1 + (T - L) // stride)
        energy = F.avg_pool1d(outputs.square(), self.energy_pool)
        return torch.log(energy + self.eps)

    def embed(self, waveforms: Tensor) -> Tensor:
        r"""The pooled features before the linear layer.

        Args:
            waveforms (Tensor): ``(B, T)`` (or ``(B, C, T)``) float32 at :attr:`sample_rate`.

        Returns:
            Tensor: ``(B, 2 * channels[-1])``: mean and max over time of the last block.
        """
        return _pool_over_time(self.blocks(self.norm(self.frontend(_mono(waveforms)))))  # blocks: (B, C, frames')

    def forward(self, waveforms: Tensor) -> Tensor:
        r"""Args:
            waveforms (Tensor): ``(B, T)`` (or ``(B, C, T)``) float32 at :attr:`sample_rate`.

        Returns:
            Tensor: ``(B, n_classes)`` logits.
        """
        return self.classifier(self.dropout(self.embed(waveforms)))
