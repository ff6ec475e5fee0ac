"""Memory bounds of a call: the automatic batch size and the peak-memory estimate of long clips."""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import Tensor

#: Peak memory of one explanation, in waveforms of the explained clip: spectra of the input and
#: the baseline, part waveforms of a wave of refinement steps, few-bin anchors and transform
#: workspace, plus two per model-input row (the row and the model's first activations). Fitted to
#: peaks measured with the tone benchmark model (10-minute clip: 1.41 GiB with 3 rows per call)
#: and rounded up: it over-estimates by about a quarter rather than under-estimate.
WAVEFORMS_PER_EXPLANATION = 36
#: The Python process, torch and the model before any explanation.
BASE_MEMORY_BYTES = 256 * 1024**2


def _available_memory_bytes(device: torch.device) -> int:
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 4 * 1024**3


def auto_batch_size(waveform_numel: int, device: torch.device, element_bytes: int = 4) -> int:
    r"""Mutants per model call that fit comfortably in memory.

    Budgets an eighth of the available memory (at most 2 GiB) and assumes a mutant costs about 16
    times its waveform (spectrum copies, the waveform and the model's activations). Between 1 and 128.

    Args:
        waveform_numel (int): Samples in one mutant (channels x time, over all inputs).
        device (torch.device): Where the mutants live.
        element_bytes (int, optional): Bytes per sample. Default: 4

    Returns:
        int: The batch size.
    """
    budget = min(_available_memory_bytes(device) // 8, 2 * 1024**3)
    per_mutant = max(waveform_numel * element_bytes * 16, 1)
    return int(max(1, min(128, budget // per_mutant)))


def estimate_memory(waveforms: Sequence[Tensor], max_rows: int) -> int:
    r"""Estimated peak memory of explaining one example, checked against the available memory.

    Long clips fail deep inside the FFT library when memory runs out; this fails first, with the
    estimate and what to do.

    Args:
        waveforms (sequence of Tensor): The explained inputs ``(B, ...)``.
        max_rows (int): Mutants per model call.

    Returns:
        int: The estimate in bytes.

    Raises:
        MemoryError: When the estimate exceeds the memory available on the inputs' device.
    """
    samples = sum(math.prod(w.shape[1:]) for w in waveforms)
    element = waveforms[0].element_size()
    estimate = samples * element * (WAVEFORMS_PER_EXPLANATION + 2 * max_rows) + BASE_MEMORY_BYTES
    available = _available_memory_bytes(waveforms[0].device)
    if estimate > available:
        gib = 1024**3
        fit = max(int((available - BASE_MEMORY_BYTES) / (element * (WAVEFORMS_PER_EXPLANATION + 2))), 0)
        raise MemoryError(
            f"explaining {samples:,} samples per example needs about {estimate / gib:.1f} GiB "
            f"(estimate, {max_rows} mutant(s) per model call) but {available / gib:.1f} GiB are "
            f"available on {waveforms[0].device}: explain shorter segments (at most about "
            f"{fit:,} samples fit), pass perturbations_per_eval=1, or free memory"
        )
    return estimate
