"""A white-box reference for the sufficient-and-necessary and complete sets: what a gradient optimiser finds.

The 5% target of the searched sufficient-and-necessary and complete sets (``benchmarks/sn_sets.py``)
has no exact limit to measure against: finding the smallest set whose removal changes the decision
and which, kept alone, keeps it (or, for the complete set, keeps the input's confidence) is a
search over 2^n sets. This benchmark gives a reference from a
method with more access than FreqReX has: the model's gradients. On each held-out clip it
optimises a relaxed rfft keep-mask ``m`` in [0, 1] (``sigmoid`` of one logit per bin, Adam) with
the model in the loop, for three goals:

* **a flipping removal** (necessary only): the waveform ``irfft(X (1 - m))`` loses the decision
  (hinge on the target's logit margin) with as little of ``m`` as the L1 penalty allows;
* **both claims** (sufficient and necessary): ``irfft(X m)`` keeps the decision and
  ``irfft(X (1 - m))`` loses it, with the same penalty;
* **complete**: both claims, and ``irfft(X m)`` keeps the decision with the target's probability
  at least the input's minus ``explain``'s default ``complete_tolerance`` (0.05; a hinge on the
  probability), with the same penalty. A complete set is a sufficient-and-necessary set plus what
  reaches the confidence, so such a set is both at once: a witness of the smallest complete set
  (without the removal's claim, 12-24 bins kept alone reach the confidence of some held-out speech
  clips whose sufficient-and-necessary sets are thousands of bins). Its grid of sizes goes on to
  70% and 90% of the bins: on speech the default's complete sets are a median 62% of them.

Each optimised mask is read as a ranking of the bins (by ``m``), and the smallest of its top-k (on
a grid of sizes) that holds the goal on the model's *real* argmax decisions (binary masks, the zero
baseline: what ``explain`` certifies) is the clip's reference. It is a witness that such a set
exists, not a bound: a better optimiser could find smaller ones. Several penalties are tried per
goal and the smallest witness is kept.

Per model the table gives, over the clips where each was found, the median share of the bins of
the flipping removal, of the both-claims set, of the complete witness, and of the default's
searched sufficient-and-necessary and complete sets (read from ``sn_sets_<split>_<model>.jsonl``
where ``sn_sets.py`` ran on the same clips), and how many of each are within 5% of the bins.

Usage::

    nice -n 10 .venv/bin/python benchmarks/white_box_sets.py --data data --threads 1 \\
        --models speech percussion --stride speech=32 percussion=4

One record per clip is appended to ``white_box_sets_<split>_<model>.jsonl`` in ``--out`` (default
``benchmarks/results``) as it finishes, so a stopped run resumes; ``white_box_sets_<split>.md`` is
rewritten after each model; records from before the complete goal get it added (the file is
rewritten). About 20 s a 3 s speech clip and 13 s a 1 s percussion clip on one thread (13 minutes
for the selection above).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from typing import Any, Callable, Dict, List, Optional

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import flip_rates  # noqa: E402  (the held-out clips, the coarse-to-fine order and the records)

#: Shares of the bins tried as the top-k of an optimised mask.
GRID = (1e-4, 2e-4, 5e-4, 1e-3, 2e-3, 5e-3, 0.01, 0.02, 0.03, 0.05, 0.08, 0.12, 0.2, 0.3, 0.5)

#: The complete goal's grid: :data:`GRID` and on to most of the bins.
COMPLETE_GRID = GRID + (0.7, 0.9)

#: L1 penalties tried per goal (times the mask's mean, in logit-margin units per 1% of the bins).
PENALTIES = {"flip": (0.5, 2.0), "both": (0.3, 1.0, 3.0), "complete": (0.3, 1.0)}

#: The complete goal: the target's probability kept alone at least the input's minus this
#: (``explain``'s default ``complete_tolerance``).
TOLERANCE = 0.05

#: Weight of the complete goal's hinge on the probability (logit-margin units per unit of
#: probability), and the probability margin it asks for above the goal.
PROBABILITY_WEIGHT, PROBABILITY_HINGE = 20.0, 0.01

#: Adam steps per optimisation, and its learning rate on the mask's logits.
STEPS, LEARNING_RATE = 200, 0.1

#: Logit margin the hinges ask for.
HINGE = 1.0


def _margin(logits: torch.Tensor, target: int) -> torch.Tensor:
    # The target's logit minus the strongest other class's, per row.
    others = logits.clone()
    others[:, target] = -torch.inf
    return logits[:, target] - others.max(dim=1).values


def _optimised_order(model: Callable, spectrum: torch.Tensor, length: int, target: int, goal: str,
                     penalty: float, reach: float = 0.0) -> torch.Tensor:
    # The bins by descending optimised keep-mask (goals "both" and "complete": the latter to a
    # target probability of ``reach``) or removal-mask (goal "flip").
    logits_of_mask = torch.full(spectrum.shape, -4.0 if goal == "flip" else -3.0, dtype=torch.float64, requires_grad=True)
    optimiser = torch.optim.Adam([logits_of_mask], lr=LEARNING_RATE)
    for _ in range(STEPS):
        mask = torch.sigmoid(logits_of_mask)
        if goal == "both":
            waves = torch.fft.irfft(torch.stack([spectrum * mask, spectrum * (1 - mask)]), n=length).float()
            margins = _margin(model(waves), target)
            loss = torch.relu(HINGE - margins[0]) + torch.relu(margins[1] + HINGE)
        elif goal == "complete":
            outputs = model(torch.fft.irfft(torch.stack([spectrum * mask, spectrum * (1 - mask)]), n=length).float())
            margins, probability = _margin(outputs, target), outputs.softmax(dim=1)[0, target]
            loss = (PROBABILITY_WEIGHT * torch.relu(reach + PROBABILITY_HINGE - probability) + torch.relu(HINGE - margins[0])
                    + torch.relu(margins[1] + HINGE))
        else:
            margins = _margin(model(torch.fft.irfft(spectrum * (1 - mask), n=length).float().unsqueeze(0)), target)
            loss = torch.relu(margins[0] + HINGE)
        loss = loss + penalty * 100 * mask.mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    return logits_of_mask.detach().argsort(descending=True)


def _outputs(model: Callable, spectrum: torch.Tensor, length: int, keeps: torch.Tensor) -> torch.Tensor:
    waves = torch.fft.irfft(spectrum * keeps.double(), n=length).float()
    with torch.no_grad():
        return torch.cat([model(waves[i : i + 32]) for i in range(0, len(waves), 32)])


def _decisions(model: Callable, spectrum: torch.Tensor, length: int, keeps: torch.Tensor) -> torch.Tensor:
    return _outputs(model, spectrum, length, keeps).argmax(1)


def smallest_witness(model: Callable, clip: torch.Tensor, target: int, goal: str) -> Optional[int]:
    r"""The smallest top-k of an optimised mask that holds ``goal`` ("flip": its removal changes the
    decision; "both": that, and kept alone it keeps it; "complete": both, kept alone at the input's
    probability minus :data:`TOLERANCE`) on real decisions, over the penalties of
    :data:`PENALTIES` (None: none on the grid)."""
    spectrum = torch.fft.rfft(clip[0].double())
    n, length = spectrum.numel(), clip.shape[-1]
    sizes = sorted({max(1, round(share * n)) for share in (COMPLETE_GRID if goal == "complete" else GRID)})
    reach = float(_outputs(model, spectrum, length, torch.ones(1, n)).softmax(dim=1)[0, target]) - TOLERANCE
    best = None
    for penalty in PENALTIES[goal]:
        order = _optimised_order(model, spectrum, length, target, goal, penalty, reach)
        chosen = torch.zeros(len(sizes), n, dtype=torch.bool)
        for row, k in enumerate(sizes):
            chosen[row, order[:k]] = True
        if goal == "complete":
            kept = _outputs(model, spectrum, length, chosen)
            holds = (kept.argmax(1) == target) & (kept.softmax(dim=1)[:, target] >= reach)
            holds &= _decisions(model, spectrum, length, ~chosen) != target
        elif goal == "both":
            holds = (_decisions(model, spectrum, length, ~chosen) != target) & (_decisions(model, spectrum, length, chosen) == target)
        else:
            holds = _decisions(model, spectrum, length, ~chosen) != target
        found = next((k for k, ok in zip(sizes, holds.tolist()) if ok), None)
        if found is not None and (best is None or found < best):
            best = found
    return best


def _share(size: Optional[int], n: int) -> Optional[float]:
    return None if size is None else size / n


def summarize(name: str, selection: str, records: List[Dict[str, Any]]) -> Dict[str, Any]:
    r"""One table row: per kind of set, on how many clips it was found, its median share of the
    bins and how many are within 5%."""
    row: Dict[str, Any] = {"model": name, "clips": selection}
    for key, label in (("flip", "white-box flipping removal"), ("both", "white-box both claims"),
                       ("search", "FreqReX default (searched)"), ("complete", "white-box complete"),
                       ("search_complete", "FreqReX default complete")):
        shares = [r[key] for r in records if r.get(key) is not None]
        row[f"{label}: found"] = f"{len(shares)}/{len(records)}"
        row[f"{label}: median share"] = f"{100 * statistics.median(shares):.2f}%" if shares else "-"
        row[f"{label}: <= 5%"] = f"{sum(s <= 0.05 for s in shares)}/{len(shares)}"
    return row


def run_model(name: str, args: argparse.Namespace) -> Dict[str, Any]:
    r"""Every selected clip of one model (resuming from its records), then its table row."""
    model, data = flip_rates.load_held_out(name, args.split, args.data)
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    stride = dict(s.split("=") for s in args.stride if "=" in s).get(name, "1")
    chosen, selection = flip_rates._selection(data.waveforms.shape[0], int(stride), None)
    searched = {r["clip"]: r for r in flip_rates.read_records(os.path.join(args.out, f"sn_sets_{args.split}_{name}.jsonl"))}
    path = os.path.join(args.out, f"white_box_sets_{args.split}_{name}.jsonl")
    done = {record["clip"]: record for record in flip_rates.read_records(path)}
    start = time.perf_counter()
    for count, position in enumerate(flip_rates._coarse_to_fine(len(chosen))):
        i = chosen[position]
        if i in done and "complete" in done[i]:
            continue
        clip = data.waveforms[i : i + 1]
        n = clip.shape[-1] // 2 + 1
        with torch.no_grad():
            target = int(model(clip).argmax(1))
        default = searched.get(i, {}).get("default") or {}
        sn, complete = default.get("sufficient_necessary"), default.get("complete")
        record = done.get(i) or {"clip": i, "source": data.sources[i], "target": target, "n_features": n,
                                 "flip": _share(smallest_witness(model, clip, target, "flip"), n),
                                 "both": _share(smallest_witness(model, clip, target, "both"), n),
                                 "search": None if not sn else sn["share"]}
        record.update(complete=_share(smallest_witness(model, clip, target, "complete"), n),
                      search_complete=None if not complete else complete["share"])
        if i in done:  # a record from before the complete goal: the file is rewritten with it added
            done[i] = record
            _rewrite(path, [done[j] for j in chosen if j in done] + [r for j, r in done.items() if j not in chosen])
        else:
            flip_rates.append_record(path, record)
            done[i] = record
        print(f"{name}: {count + 1}/{len(chosen)} clips, {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
    return summarize(name, selection, [done[i] for i in chosen if i in done])


def _rewrite(path: str, records: List[Dict[str, Any]]) -> None:
    # The records file written anew (through a temporary file: a stopped run keeps the old one).
    with open(path + ".tmp", "w") as handle:
        handle.writelines(json.dumps(record) + "\n" for record in records)
    os.replace(path + ".tmp", path)


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["speech", "percussion"], help="zoo models")
    parser.add_argument("--split", choices=["test", "train"], default="test")
    parser.add_argument("--data", default=os.path.join(flip_rates.REPO, "data"), help="built data sets (default: data/)")
    parser.add_argument("--stride", nargs="*", default=["speech=32", "percussion=4"], help="MODEL=K: every K-th clip")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--out", default=os.path.join(flip_rates.REPO, "benchmarks", "results"))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    rows = [run_model(name, args) for name in args.models]
    command = "benchmarks/white_box_sets.py " + " ".join(a for a in (argv if argv is not None else sys.argv[1:]))
    columns = list(rows[0])
    lines = [f"`{command}`, torch {torch.__version__}, {args.threads} threads", "",
             "| " + " | ".join(columns) + " |", "| " + " | ".join("---" for _ in columns) + " |"]
    lines += ["| " + " | ".join(str(r[c]) for c in columns) + " |" for r in rows]
    with open(os.path.join(args.out, f"white_box_sets_{args.split}.md"), "w") as handle:
        handle.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
