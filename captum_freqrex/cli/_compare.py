"""What ``freqrex compare`` compares on (the user's clips or a zoo model's shipped ones) and its files."""

from __future__ import annotations

from typing import Optional, Sequence, Tuple

import torch
from torch import Tensor

from captum_freqrex.cli._common import Baseline, CliError, LoadedModel, say
from captum_freqrex.compare import ComparisonTable

__all__ = ["COMPARE_FILES", "compare_clips", "compare_baselines", "save_table"]

#: The files ``compare`` writes.
COMPARE_FILES: Tuple[str, ...] = ("compare.md", "compare.csv")


def compare_clips(waves: Sequence[Tensor], model: LoadedModel, clips: int) -> Tensor:
    """The user's clips ``(time,)`` stacked, or without any the zoo model's first ``clips`` shipped clips.

    A comparison scores its clips as one batch, of one length. Clips that a model taking any length
    (``pad_short_clips`` False) got at their own lengths are zero-padded to the longest of them,
    and the command says so; for any other model, files of different lengths are refused.
    """
    if waves:
        lengths = {w.shape[-1] for w in waves}
        if len(lengths) > 1 and not model.pad_short_clips:
            longest = max(lengths)
            say(f"compare: clips zero-padded to the longest, {longest} samples: a comparison scores clips of one length")
            return torch.stack([torch.nn.functional.pad(w, (0, longest - w.shape[-1])) for w in waves])
        if len(lengths) > 1:
            raise CliError(
                f"the audio files have different lengths ({sorted(lengths)} samples) and the model has no clip "
                "length to fit them to; a comparison scores clips of one length: trim or pad them to the same duration"
            )
        return torch.stack(list(waves))
    from captum_freqrex import zoo

    if model.zoo_name is None:
        raise CliError("a model outside the zoo has no shipped clips: pass audio files to compare on")
    return torch.stack([c.waveform for c in zoo.sample_clips(model.zoo_name)[:clips]])


def compare_baselines(baseline: Baseline, waves: Tensor, sample_rate: int) -> Optional[Tensor]:
    """``--baseline`` for each clip of ``waves`` ``(clips, time)``, stacked; None for silence."""
    bases = [baseline.for_clip(wave, sample_rate)[0] for wave in waves]
    return None if baseline.kind == "silence" else torch.stack(bases)  # type: ignore[arg-type]


def save_table(table: ComparisonTable, out: str) -> Tuple[str, str]:
    """``compare.md`` and ``compare.csv`` of a comparison table in ``out``; returns their paths."""
    try:
        markdown_path, csv_path = table.save(out)
    except OSError as error:
        raise CliError(f"cannot write {error.filename or out}: {error.strerror or error}") from None
    return markdown_path, csv_path
