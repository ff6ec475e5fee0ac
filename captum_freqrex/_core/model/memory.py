"""Memory bounds of a call: the automatic batch size and the peak-memory estimate of long clips."""

from __future__ import annotations

import math
from typing import Optional, Sequence

import torch
from torch import Tensor

#: Peak memory of one explanation, in waveforms of the explained clip: spectra of the input and
#: the baseline, part waveforms of a wave of refinement steps (the 60-minute peak is there), few-bin
#: anchors and transform workspace, plus two per model-input row (the row and the model's first
#: activations). Fitted to the peaks of ``freqrex explain`` measured by ``benchmarks/memory.py``
#: (tone task; 1, 10 and 60 minutes at 16 kHz: 613 MiB with 34 rows per call, 1.40 GiB with 3,
#: 8.34 GiB with 1): the estimate is 1.03, 1.20 and 0.96 times those peaks. (36, before, gave
#: 1.07, 1.26 and 1.01: the peak grows a little faster than the clip.)
WAVEFORMS_PER_EXPLANATION = 34
#: The Python process, torch and the model before any explanation.
BASE_MEMORY_BYTES = 256 * 1024**2


#: Where a cgroup states its memory limit and usage: cgroup v2, then v1 (whose "no limit" is a huge number).
CGROUP_MEMORY_FILES = (
    ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
    ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes"),
)


def _read_int(path: str) -> Optional[int]:
    try:
        with open(path) as handle:
            text = handle.read().split()[0]
    except (OSError, IndexError):
        return None
    return int(text) if text.isdigit() else None  # cgroup v2 writes "max" for no limit


def _meminfo_available() -> Optional[int]:
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _cgroup_free() -> Optional[int]:
    # A container's limit can be far below the machine's free memory, which is all MemAvailable sees.
    for limit_path, usage_path in CGROUP_MEMORY_FILES:
        limit, usage = _read_int(limit_path), _read_int(usage_path)
        if limit is not None and usage is not None and limit < 2**60:
            return max(limit - usage, 0)
    return None


def _address_space_free() -> Optional[int]:
    # An address-space limit (ulimit -v, RLIMIT_AS) counts every mapping of the process: what is
    # left is the limit minus the process's virtual size, whatever the machine has free.
    try:
        import resource
    except ImportError:  # not on this platform
        return None
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft == resource.RLIM_INFINITY:
        return None
    try:
        with open("/proc/self/status") as status:
            size = next((int(line.split()[1]) * 1024 for line in status if line.startswith("VmSize:")), None)
    except OSError:
        size = None
    return None if size is None else max(soft - size, 0)


def _available_memory_bytes(device: torch.device) -> int:
    """The memory an explanation may still take: the least of what the machine has available, what
    the process's cgroup allows and what its address-space limit leaves (4 GiB when none is known)."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    bounds = [b for b in (_meminfo_available(), _cgroup_free(), _address_space_free()) if b is not None]
    return min(bounds) if bounds else 4 * 1024**3


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
