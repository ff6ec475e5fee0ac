"""Memory benchmark: the up-front estimate of ``freqrex explain`` against its measured peak.

For 1, 10 and 60 minute clips at 16 kHz it writes a tone clip (``perf.py``'s 440 Hz tone task) as a
float WAV, runs ``freqrex explain`` on it in a child process (the command as a user runs it: the
model is ``perf:ToneCNN``, a ``module:callable``), and reports the child's peak resident set
(``os.wait4``'s ``ru_maxrss``) beside the estimate that FreqReX checks before any FFT
(:func:`~captum_freqrex._core.model.memory.estimate_memory` with the mutants per model call that
the command chooses), their ratio, the wall time and the size of the result folder. The tone
model's activations are small, so the peak is FreqReX's own (and the command's output writing).

Long clips get a small query budget (``--max-queries``, default 1000 for 1 minute and 100 for 10
and 60 minutes) so that the run takes minutes: the peak does not grow with the budget, since every
query reuses the same model-input rows. Not part of the test run (``tests/test_benchmarks.py``
runs a smoke version on a short clip).

Usage::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/memory.py                  # 1, 10, 60 minutes
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/memory.py --minutes 1 10 --out /tmp/mem
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from typing import Dict, List, Optional

import torch

from captum_freqrex._core.model.memory import estimate_memory
from captum_freqrex._core.model.oracle import rows_per_call
from captum_freqrex.audio import save_wav

HERE = os.path.dirname(os.path.abspath(__file__))
SAMPLE_RATE = 16000
MIB = 1024**2


def tone_wav(path: str, seconds: float) -> int:
    """Write ``perf.py``'s tone clip of ``seconds`` as a float WAV (its peak is above 1); return its samples."""
    sys.path.insert(0, HERE)
    from perf import tone_clip

    clip = tone_clip(seconds)
    save_wav(path, clip[0], SAMPLE_RATE)
    return clip.shape[-1]


def up_front_estimate(samples: int) -> Dict[str, int]:
    """What ``explain`` estimates for a mono clip of ``samples``, and the mutants per call it picks."""
    waves = [torch.empty((1, samples))]  # never written: its pages are not resident
    rows = rows_per_call(waves)
    return {"rows_per_call": rows, "estimate": estimate_memory(waves, rows)}


def folder_bytes(folder: str) -> Dict[str, int]:
    """Bytes of each file of a result folder, and their total under ``"total"``."""
    sizes = {name: os.path.getsize(os.path.join(folder, name)) for name in sorted(os.listdir(folder))}
    return {**sizes, "total": sum(sizes.values())}


def run_explain(wav: str, out: str, max_queries: int, extra: List[str]) -> Dict[str, float]:
    """Run ``freqrex explain`` on ``wav`` in a child process; its peak RSS (MiB) and wall time (s)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([HERE, os.environ.get("PYTHONPATH", "")]))
    command = [sys.executable, "-m", "captum_freqrex", "explain", wav, "--model", "perf:ToneCNN",
               "--out", out, "--max-queries", str(max_queries), *extra]
    start = time.perf_counter()
    child = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output = child.stdout.read() if child.stdout is not None else ""
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - start
    if child.returncode != 0:
        raise RuntimeError(f"freqrex explain exited with {child.returncode}:\n{output}")
    return {"peak_mib": usage.ru_maxrss / 1024, "wall_s": wall}


def measure(minutes: float, max_queries: int, workdir: str, extra: List[str]) -> Dict:
    """One row of the table: estimate, measured peak, ratio, wall time and output size."""
    wav = os.path.join(workdir, f"tone_{minutes:g}min.wav")
    samples = tone_wav(wav, minutes * 60)
    estimate = up_front_estimate(samples)
    out = os.path.join(workdir, f"out_{minutes:g}min")
    run = run_explain(wav, out, max_queries, extra)
    sizes = folder_bytes(out)
    os.remove(wav)
    estimate_mib = estimate["estimate"] / MIB
    return {
        "minutes": minutes, "samples": samples, "max_queries": max_queries,
        "rows_per_call": estimate["rows_per_call"],
        "estimate_mib": round(estimate_mib, 1), "peak_rss_mib": round(run["peak_mib"], 1),
        "estimate_over_peak": round(estimate_mib / run["peak_mib"], 3),
        "wall_s": round(run["wall_s"], 1), "output_mb": round(sizes["total"] / 1e6, 2),
        "largest_file": max((k for k in sizes if k != "total"), key=sizes.__getitem__),
    }


def markdown(rows: List[Dict]) -> str:
    """The rows as a markdown table."""
    lines = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
    return "\n".join(lines + ["| " + " | ".join(str(v) for v in row.values()) + " |" for row in rows])


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, nargs="+", default=[1, 10, 60], help="clip lengths (default 1 10 60)")
    parser.add_argument("--max-queries", type=int, default=None,
                        help="query budget of every clip (default: 1000 up to 1 minute, 100 beyond)")
    parser.add_argument("--out", default=os.path.join(HERE, "results"))
    parser.add_argument("--explain-args", default="", help="more arguments of freqrex explain, one string")
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory(prefix="freqrex_memory_") as workdir:
        for minutes in args.minutes:
            budget = args.max_queries or (1000 if minutes <= 1 else 100)
            rows.append(measure(minutes, budget, workdir, args.explain_args.split()))
            print(json.dumps(rows[-1]), file=sys.stderr)
    environment = (f"torch {torch.__version__}, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, "
                   f"cpus {os.cpu_count()}, model perf:ToneCNN through freqrex explain")
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "memory.md"), "w") as handle:
        handle.write(f"{environment}\n\n{markdown(rows)}\n")
    print(markdown(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
