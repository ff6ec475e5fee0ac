"""Performance benchmark: FreqReX vs Captum methods over the same frequency features.

For 1 s, 10 s and 30 s clips at 16 kHz it reports, per method: wall time (median of repeats), model
queries, forward calls, model time vs overhead, peak memory, sufficient-set size and whether it was
certified. Not part of the test run (``tests/test_benchmarks.py`` runs a smoke version).

FreqReX has two rows: ``FreqReX`` is ``explain`` (the responsibility and the three certified
sets), ``FreqReX.attribute`` is ``attribute`` (the responsibility alone: the output the Captum
methods give, and what a Captum pipeline swapping IG for FreqReX pays). The sufficient set of
every row but ``FreqReX`` is extracted and certified from its attributions afterwards, untimed.

Two models: ``--model tone`` (default), a tiny 1-D CNN detecting a 440 Hz tone, whose decisive
bin is known (the sufficient set must contain it); ``--model instruments``, the example CNN of the
zoo (log-mel CNN, instrument family) on its shipped 30 s piano clip, cropped to each length (the
network is length-agnostic). Captum's methods explain the class FreqReX explains (the model's
decision).

Usage::

    .venv/bin/python benchmarks/perf.py                      # 1/10/30 s, tone CNN, 3 repeats
    .venv/bin/python benchmarks/perf.py --model instruments  # the zoo's example CNN, 3/10/30 s
    .venv/bin/python benchmarks/perf.py --lengths 1 --repeats 1 --out /tmp/perf
    .venv/bin/python benchmarks/perf.py --model instruments --methods FreqReX IntegratedGradients \
        --lengths 3 30 --threads 1 --repeats 7               # issue 23's ratio, one torch thread
    .venv/bin/python benchmarks/perf.py --long-clip 600      # also a 10-minute clip (FreqReX only)
    .venv/bin/python benchmarks/perf.py --device cuda        # on a GPU: adds GPU peak memory and
                                                             # FreqReX's host synchronisations

    # glibc keeps freed memory instead of returning it (no page faults per batch of long clips)
    export MALLOC_MMAP_THRESHOLD_=4294967296 MALLOC_TRIM_THRESHOLD_=8589934592
    .venv/bin/python benchmarks/perf.py --model instruments

How many queries the default spends per clip (the search's and the whole explanation's, beside
the old default's whole budget and IG's time) is ``benchmarks/queries_to_answer.py``'s table.

Every method's cost comes from one :class:`QueryStats`, kept by the one caller of the model
(:class:`~captum_freqrex._core.model.oracle.Oracle`): FreqReX's own (``last_stats``), and for Captum's
methods an oracle passed to :class:`FrequencyForward` as the model, timing the whole attribution.

``cpu_s_median`` is the process CPU time of a method's run (all its threads): on a machine that
other work shares, it moves less than the wall time (time slices of other processes do not count),
so with ``--threads 1`` it is the steadier figure to compare methods by. FreqReX's rows also give
``synthesis_s_median``, the time of its inverse transforms (the mutants' waveforms, timed on the
domain instance it synthesises with: part of the overhead, and a cost every query of a waveform
model pays), its wall time over IntegratedGradients' at the same length (``vs_ig``), the same
ratio for FreqReX's model time alone (``vs_ig_model_only``: FreqReX with no overhead at all, its
queries at their measured cost per query) and for its model time plus its inverse transforms
(``vs_ig_floor``: its queries with no bookkeeping, the floor its overhead can be cut to without
fewer queries or cheaper transforms), and the ratio of CPU times (``vs_ig_cpu``), where both
methods ran. ``floor_share`` is that floor over FreqReX's own wall time: the share of the limit its
bookkeeping leaves it (1 would be no bookkeeping at all).

The repeats are taken in rounds: every method once per round, in the order given, so a slower
stretch of the machine slows the runs of one round alike. ``vs_ig`` is the ratio of the two
medians; ``vs_ig_paired`` the median of the ratios round by round (FreqReX's run over IG's run of
the same round) and ``vs_ig_paired_range`` their least and greatest: on a shared machine, where
runs minutes apart differ by 10-20%, the paired median and its range are the figure to quote
(``--repeats 7`` for issue 23's ratio).

``peak_rss_mib`` is the process's resident set at its highest during a method's runs (the peak is
reset before each run where Linux allows it, ``/proc/self/clear_refs``; elsewhere it is the
process's peak so far, which with runs taken in rounds includes the other methods').

The first line of ``perf.md`` records the torch version, threads, allocator settings and device.
On CUDA, timings synchronise the device before reading the clock, ``peak_cuda_mib`` is the most
GPU memory allocated during each method's runs, and ``host_syncs`` counts the implicit
device-to-host synchronisations of one FreqReX explanation (as flagged by
``torch.cuda.set_sync_debug_mode``), to compare with its ``forward_calls``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import time
import warnings
from typing import Callable, Dict, List, Optional, Tuple

import torch
from torch import nn

from captum.attr import FeatureAblation, IntegratedGradients, KernelShap

from captum_freqrex import FreqReX, FrequencyForward, QueryStats, RfftDomain, log_bands
from captum_freqrex._core.model.oracle import Oracle
from captum_freqrex._utils.csv_cells import write_rows

SAMPLE_RATE = 16000
TONE_HZ = 440.0


class ToneCNN(nn.Module):
    """A tiny 1-D CNN that detects a 440 Hz tone: a matched-filter conv front end (fixed weights),
    then a small conv stack whose cost grows with clip length like a real raw-waveform CNN.

    Class 1 ("tone") when the 440 Hz energy exceeds a threshold. The decisive frequency is known by
    construction, so the benchmark can check that each method's sufficient set contains it.
    """

    def __init__(self, threshold: float = 0.05) -> None:
        super().__init__()
        taps = 1024
        t = torch.arange(taps) / SAMPLE_RATE
        window = torch.hann_window(taps)
        kernel = torch.stack([torch.cos(2 * torch.pi * TONE_HZ * t), torch.sin(2 * torch.pi * TONE_HZ * t)]) * window
        self.front = nn.Conv1d(1, 2, taps, stride=128, bias=False)
        self.front.weight.data = (kernel / window.sum()).unsqueeze(1)
        g = torch.Generator().manual_seed(0)
        self.context = nn.Sequential(
            nn.Conv1d(1, 16, 9, padding=4), nn.ReLU(), nn.Conv1d(16, 16, 9, padding=4), nn.ReLU()
        )
        for p in self.context.parameters():
            p.data = 0.1 * torch.randn(p.shape, generator=g)
        self.threshold = threshold

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        response = self.front(x.unsqueeze(1))  # (B, 2, frames)
        energy = response.pow(2).sum(1, keepdim=True)  # (B, 1, frames)
        texture = self.context(energy).mean(dim=(1, 2))  # realistic cost, tiny influence
        score = 4 * energy.mean(dim=(1, 2)) / self.threshold - 4 + 1e-3 * texture
        return torch.stack([-score, score], dim=1)


def tone_clip(seconds: float, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    n = int(seconds * SAMPLE_RATE)
    t = torch.arange(n) / SAMPLE_RATE
    clip = 0.5 * torch.sin(2 * torch.pi * TONE_HZ * t) + 0.3 * torch.sin(2 * torch.pi * 1234.0 * t)
    return (clip + 0.1 * torch.randn(n, generator=g)).unsqueeze(0)


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work, so that the clock measures it (a no-op on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def count_host_syncs(model: nn.Module, clip: torch.Tensor) -> int:
    """Implicit device-to-host synchronisations of one FreqReX explanation on CUDA (untimed run)."""
    torch.cuda.set_sync_debug_mode("warn")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            FreqReX(model).explain(clip)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    return sum("synchroniz" in str(w.message) for w in caught)


def resolve_device(name: str) -> torch.device:
    """The benchmark's device; a clear error when CUDA is asked for but absent."""
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit(
            f"perf.py: error: --device {name}: CUDA is not available (torch {torch.__version__}); "
            "run on a machine with a GPU and a CUDA build of torch, or use --device cpu"
        )
    return device


def allocator_settings() -> str:
    """How the C allocator is configured: large allocations cost page faults with glibc's defaults."""
    settings = [f"{k}={os.environ[k]}" for k in ("LD_PRELOAD", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_") if k in os.environ]
    return ", ".join(settings) or "glibc defaults"


def reset_peak_rss() -> bool:
    """Reset the process's peak resident set to its current size (Linux: ``/proc/self/clear_refs``),
    so that :func:`peak_rss_mib` measures the next run (with what the process holds already: memory
    that earlier runs freed and the allocator kept). Nothing is handed back to the system first:
    a run would then pay the page faults of getting it again, which slowed IntegratedGradients'
    large batches by 15-30% and no FreqReX run. False where it cannot be reset."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def peak_rss_mib() -> float:
    """The process's peak resident set in MiB: since the last :func:`reset_peak_rss` where the
    kernel reports it (``VmHWM``), else since the process started."""
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def instruments_model_and_clip() -> Tuple[nn.Module, torch.Tensor]:
    """The zoo's instruments CNN and its first shipped clip ``(1, 480000)`` (30 s at 16 kHz)."""
    from captum_freqrex import zoo

    loaded = zoo.load("instruments")
    if loaded.sample_rate != SAMPLE_RATE:
        raise RuntimeError(f"the instruments model runs at {loaded.sample_rate} Hz, not {SAMPLE_RATE}")
    return loaded.model, zoo.load_clip("instruments", 0).waveform.unsqueeze(0)


def crop_or_loop(clip: torch.Tensor, seconds: float) -> torch.Tensor:
    """The clip cut (or repeated) to ``seconds``."""
    n = int(seconds * SAMPLE_RATE)
    repeats = -(-n // clip.shape[-1])
    return clip.repeat(1, repeats)[:, :n].contiguous()


class SynthesisTimer:
    r"""Times the inverse transforms of one :class:`RfftDomain` instance (its lone, batched and
    few-bin syntheses), without changing which of them FreqReX takes.

    The instance's own methods are wrapped (the class's stay, so every path that checks the class,
    such as the few-bin synthesis, is taken as without the timer). On CUDA the device is
    synchronised before the clock is read.
    """

    def __init__(self) -> None:
        self.domain = RfftDomain()
        self.seconds = 0.0
        for name in ("synthesize", "synthesize_into", "synthesize_few"):
            setattr(self.domain, name, self._timed(getattr(self.domain, name)))

    def _timed(self, method):
        # Every synthesis returns its waveforms: the device to synchronise is theirs.
        def timed(*args, **kwargs):
            start = time.perf_counter()
            waves = method(*args, **kwargs)
            synchronize(waves.device)
            self.seconds += time.perf_counter() - start
            return waves
        return timed


def cost(stats: QueryStats) -> Dict:
    """The table's cost columns, all from one QueryStats."""
    return {
        "wall_s": stats.total_seconds, "queries": stats.queries, "calls": stats.forward_calls,
        "model_s": stats.model_seconds,
    }


#: FreqReX's rows: ``explain`` (the responsibility and the three certified sets) and
#: ``attribute`` (the responsibility alone, the output a Captum attribution method gives).
FREQREX_METHODS = ("FreqReX", "FreqReX.attribute")


def run_method(name: str, model: nn.Module, clip: torch.Tensor, budget: int, target: int = 1) -> Dict:
    """Attribute with one method; return its attributions (per bin), cost and process CPU time."""
    start = time.process_time()
    result = _run_method(name, model, clip, budget, target)
    return {**result, "cpu_s": time.process_time() - start}


def _run_method(name: str, model: nn.Module, clip: torch.Tensor, budget: int, target: int) -> Dict:
    if name in FREQREX_METHODS:
        timer = SynthesisTimer()
        explainer = FreqReX(model, domain=timer.domain)
        if name == "FreqReX.attribute":  # the responsibility alone: what IG's attributions compare with
            result = {"attr": explainer.attribute(clip)}
        else:
            result = {"expl": explainer.explain(clip)[0]}
        return {**result, "features": clip.shape[-1] // 2 + 1, **cost(explainer.last_stats), "synthesis_s": timer.seconds}
    oracle = Oracle(model)  # counts, times and checks every call, as FreqReX's own oracle does
    with oracle.measure(), torch.enable_grad():
        bands = log_bands(clip.shape[-1], 256, sample_rate=SAMPLE_RATE).unsqueeze(0).to(clip.device)
        wrapped = FrequencyForward(oracle, clip)
        if name == "IntegratedGradients":
            attr = IntegratedGradients(wrapped).attribute(
                wrapped.ones(), baselines=wrapped.zeros(), target=target, n_steps=50, internal_batch_size=25
            )
            features = clip.shape[-1] // 2 + 1
        elif name == "KernelShap":
            attr = KernelShap(wrapped).attribute(
                wrapped.ones(), baselines=wrapped.zeros(), target=target, feature_mask=bands,
                n_samples=budget, perturbations_per_eval=32,
            )
            features = int(bands.max()) + 1
        elif name == "FeatureAblation":
            attr = FeatureAblation(wrapped).attribute(
                wrapped.ones(), baselines=wrapped.zeros(), target=target, feature_mask=bands, perturbations_per_eval=32
            )
            features = int(bands.max()) + 1
        else:
            raise ValueError(name)
        synchronize(clip.device)
    return {"attr": attr, "features": features, **cost(oracle.stats)}


def certify(model: nn.Module, clip: torch.Tensor, result: Dict, target: int, tone: bool) -> Dict:
    """Sufficient-set size and certification of a method's ranking (FreqReX's own extraction)."""
    expl = result.get("expl")
    if expl is None:
        expl = FreqReX(model).explain(clip, target=target, attributions=result["attr"])[0]
    suff = expl.sufficient
    row = {
        "sufficient_bins": None if suff is None else suff.n_bins,
        "certified": bool(suff is not None and suff.certified),
    }
    if tone:
        row["contains_tone_bin"] = bool(suff is not None and suff.mask[round(TONE_HZ * clip.shape[-1] / SAMPLE_RATE)])
    return row


def floor_share(runs: List[Dict]) -> float:
    """The share of its floor a FreqReX run reaches: its model time plus its inverse transforms
    (its queries with no bookkeeping) over its wall time, the median over ``runs``."""
    return round(statistics.median((r["model_s"] + r["synthesis_s"]) / r["wall_s"] for r in runs), 3)


def interleaved_runs(methods: List[str], repeats: int, run: Callable[[str, int], Dict]) -> Dict[str, List[Dict]]:
    """Each method's ``repeats`` runs, taken in rounds (every method once per round, in order), so
    that a slower stretch of a shared machine slows every method of a round alike and the paired
    ratios (:func:`paired_ratios`) compare runs taken side by side. ``run(name, budget)``: one
    run; the budget of the sampling methods is FreqReX's queries in its first run (0 before it,
    or without FreqReX)."""
    runs: Dict[str, List[Dict]] = {name: [] for name in methods}
    budget = 0
    for _ in range(repeats):
        for name in methods:
            runs[name].append(run(name, budget))
            if name == "FreqReX" and len(runs[name]) == 1:
                budget = runs[name][0]["queries"]
    return runs


def paired_ratios(freqrex_walls: List[float], ig_walls: List[float]) -> Tuple[float, str]:
    """The median over rounds of FreqReX's wall time over IntegratedGradients' in the same round,
    and the least and greatest of those ratios (as ``"min-max"``)."""
    ratios = sorted(f / g for f, g in zip(freqrex_walls, ig_walls))
    return round(statistics.median(ratios), 2), f"{ratios[0]:.2f}-{ratios[-1]:.2f}"


def add_ig_ratios(rows: List[Dict], round_walls: Optional[Dict[Tuple[float, str], List[float]]] = None) -> None:
    """``vs_ig``, ``vs_ig_paired``, ``vs_ig_paired_range``, ``vs_ig_model_only``, ``vs_ig_floor``
    and ``vs_ig_cpu`` on every row: FreqReX's wall time over IntegratedGradients' (the ratio of
    the medians, then the median and range of the ratios round by round, from ``round_walls``:
    each method's wall times per ``(seconds, method)`` in round order), its model time, and model
    time plus inverse transforms, over IG's wall, and its process CPU time over IG's, at the same
    length; empty on other rows and where IG did not run."""
    ig = {r["seconds"]: r for r in rows if r["method"] == "IntegratedGradients"}
    round_walls = round_walls or {}
    for row in rows:
        base = ig.get(row["seconds"]) if row["method"] in FREQREX_METHODS else None
        row["vs_ig"] = round(row["wall_s_median"] / base["wall_s_median"], 2) if base else ""
        pair = [round_walls.get((row["seconds"], m)) for m in (row["method"], "IntegratedGradients")]
        paired = paired_ratios(pair[0], pair[1]) if base and pair[0] and pair[1] else ("", "")
        row["vs_ig_paired"], row["vs_ig_paired_range"] = paired
        row["vs_ig_model_only"] = round(row["model_s_median"] / base["wall_s_median"], 2) if base else ""
        floor = row["model_s_median"] + (row["synthesis_s_median"] or 0.0) if base else 0.0
        row["vs_ig_floor"] = round(floor / base["wall_s_median"], 2) if base else ""
        row["vs_ig_cpu"] = round(row["cpu_s_median"] / base["cpu_s_median"], 2) if base and base["cpu_s_median"] else ""


def main(argv: List[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=float, nargs="+", default=None,
                        help="clip lengths in s (default 1 10 30; 3 10 30 for instruments, trained on 4 s crops)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--methods", nargs="+",
                        default=["FreqReX", "FreqReX.attribute", "IntegratedGradients", "KernelShap", "FeatureAblation"])
    parser.add_argument("--long-clip", type=float, default=0, help="also explain a clip this long (s) with FreqReX")
    parser.add_argument("--model", choices=["tone", "instruments"], default="tone", help="model under explanation")
    parser.add_argument("--out", default="benchmarks/results")
    parser.add_argument("--device", default="cpu", help="where the model, clips and explanations run (cpu, cuda)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own)")
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    on_gpu = device.type == "cuda"
    torch.manual_seed(0)
    tone = args.model == "tone"
    lengths = args.lengths or ([1, 10, 30] if tone else [3, 10, 30])
    if tone:
        model, source = ToneCNN().eval(), None
    else:
        model, source = instruments_model_and_clip()
    model.to(device)
    rows = []
    round_walls: Dict[Tuple[float, str], List[float]] = {}  # each method's wall times, round by round
    environment = (f"model {args.model}, torch {torch.__version__}, threads {torch.get_num_threads()}, "
                   f"cpus {os.cpu_count()}, allocator: {allocator_settings()}, device {device}")
    if on_gpu:
        environment += f" ({torch.cuda.get_device_name(device)})"
    print(environment, file=sys.stderr)

    def clip_of(seconds: float) -> torch.Tensor:
        clip = tone_clip(seconds) if source is None else crop_or_loop(source, seconds)
        return clip.to(device)

    def gpu_columns(name: str, clip: torch.Tensor, runs: List[Dict]) -> Dict:
        if not on_gpu:
            return {}
        peak = max(r["peak_cuda_mib"] for r in runs)
        syncs = count_host_syncs(model, clip) if name == "FreqReX" else ""
        return {"peak_cuda_mib": round(peak, 1), "host_syncs": syncs}

    def one_run(name: str, clip: torch.Tensor, budget: int, target: int) -> Dict:
        # One run of a method, with the most memory it held (the runs of a round take turns, so
        # the process's peak so far would be every method's).
        reset_peak_rss()
        if on_gpu:
            torch.cuda.reset_peak_memory_stats(device)
        result = run_method(name, model, clip, max(budget, 64), target)
        result["peak_rss_mib"] = peak_rss_mib()
        if on_gpu:
            result["peak_cuda_mib"] = torch.cuda.max_memory_allocated(device) / 2**20
        return result

    def row_of(name: str, seconds: float, clip: torch.Tensor, target: int, runs: List[Dict]) -> Dict:
        # A method's row: medians over its runs; queries, calls and sets from the first.
        walls = [r["wall_s"] for r in runs]
        best = runs[0]
        overhead = statistics.median(r["wall_s"] - r["model_s"] for r in runs)
        return {
            "model": args.model, "seconds": seconds, "method": name, "features": best["features"],
            "wall_s_median": round(statistics.median(walls), 3),
            "model_s_median": round(statistics.median(r["model_s"] for r in runs), 3),
            "overhead_s_median": round(overhead, 3),
            "overhead_share": round(overhead / statistics.median(walls), 3),
            "synthesis_s_median": round(statistics.median(r["synthesis_s"] for r in runs), 3) if name in FREQREX_METHODS else "",
            "floor_share": floor_share(runs) if name in FREQREX_METHODS else "",
            "cpu_s_median": round(statistics.median(r["cpu_s"] for r in runs), 3),
            "queries": best["queries"], "forward_calls": best["calls"],
            "peak_rss_mib": round(max(r["peak_rss_mib"] for r in runs), 1),
            **gpu_columns(name, clip, runs),
            **certify(model, clip, best, target, tone),
        }

    for seconds in lengths:
        clip = clip_of(seconds)
        with torch.no_grad():
            target = int(model(clip).argmax(1))
        runs_of = interleaved_runs(
            args.methods, args.repeats, lambda name, budget, clip=clip, target=target: one_run(name, clip, budget, target))
        for name in args.methods:
            row = row_of(name, seconds, clip, target, runs_of[name])
            round_walls[(seconds, name)] = [r["wall_s"] for r in runs_of[name]]
            rows.append(row)
            print(json.dumps(row), file=sys.stderr)
    if args.long_clip:
        clip = clip_of(args.long_clip)
        with torch.no_grad():
            target = int(model(clip).argmax(1))
        rows.append(row_of("FreqReX", args.long_clip, clip, target, [one_run("FreqReX", clip, 0, target)]))
    add_ig_ratios(rows, round_walls)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "perf.csv"), "w", newline="") as handle:
        write_rows(handle, rows)
    header = "| " + " | ".join(rows[0]) + " |"
    lines = [header, "|" + "---|" * len(rows[0])] + ["| " + " | ".join(str(v) for v in r.values()) + " |" for r in rows]
    markdown = "\n".join(lines)
    with open(os.path.join(args.out, "perf.md"), "w") as handle:
        handle.write(f"{environment}\n\n{markdown}\n")
    print(markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
