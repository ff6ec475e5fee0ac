"""Running every method of a comparison and scoring its ranking with the same metrics."""

from __future__ import annotations

import statistics
import sys
import warnings
from typing import Any, Dict, List, Optional, Sequence, Tuple

from torch import Tensor

from captum_freqrex._core.certify.ranking import DEFAULT_RTOL
from captum_freqrex.compare._runners import Attribution, Naive, RunOptions, attribute_all
from captum_freqrex.compare._setup import Setup
from captum_freqrex.metrics import (
    deletion_curve,
    insertion_curve,
    minimal_sufficient_prefix,
    perturbation_success_rate,
)


def _mean(values: Sequence[float]) -> float:
    return float(statistics.fmean(values)) if values else float("nan")


def _median(values: Tensor) -> float:
    """The median, averaging the two middle values of an even count (``torch.median`` takes the lower)."""
    return float(statistics.median(values.double().tolist()))


def _score(
    setup: Setup, attribution: Attribution, ks: Sequence[int], n_steps: int, max_batch: Optional[int],
    rank_rtol: float = DEFAULT_RTOL,
) -> Dict[str, Any]:
    common = dict(
        rank_rtol=rank_rtol,
        baselines=setup.baselines,
        target=setup.targets,
        feature_mask=setup.eval_mask,
        max_examples_per_batch=max_batch,
        domain=setup.domain,
        per_channel=setup.per_channel,
        decision=setup.decision,
        output=setup.output,
    )
    model, clips, values = setup.model, setup.clips, attribution.values
    row: Dict[str, Any] = {}
    evaluations = [("", setup.eval_mask, setup.n_eval)]
    if setup.band_mask is not None:
        evaluations.append(("_bands", setup.band_mask, setup.n_band))
    for suffix, mask, n_features in evaluations:
        feasible = [k for k in ks if k <= n_features]
        rates: Dict[int, Any] = {k: None for k in ks}
        snrs: Dict[int, Any] = {k: None for k in ks}
        if feasible:
            flips = perturbation_success_rate(model, clips, values, k=feasible, **{**common, "feature_mask": mask})
            for j, k in enumerate(feasible):
                rates[k] = float(flips.success_rate[j])
                snrs[k] = _median(flips.snr_db[:, j])
        row.update({f"flip@{k}{suffix}": rates[k] for k in ks})
        row.update({f"snr_db@{k}{suffix}": snrs[k] for k in ks})
    prefix = minimal_sufficient_prefix(model, clips, values, **common)
    deletion = deletion_curve(model, clips, values, n_steps=n_steps, **common)
    insertion = insertion_curve(model, clips, values, n_steps=n_steps, **common)
    found = prefix.size[prefix.found]
    row["min_sufficient"] = _median(found) if found.numel() else None
    row["sufficient_found"] = float(prefix.found.double().mean())
    row["sufficient_monotone"] = float(prefix.monotone.double().mean())
    row["deletion_auc"] = float(deletion.auc.mean())
    row["insertion_auc"] = float(insertion.auc.mean())
    return row


def _run_method(
    name: str, runner: Any, setup: Setup, budgets: List[int], options: RunOptions, ks: List[int], n_steps: int,
    max_batch: Optional[int], strict: bool,
) -> Tuple[Dict[str, Any], Optional[Attribution]]:
    """One method's row: its attribution's cost, then its scores; an error goes into the row unless strict."""
    row: Dict[str, Any] = {"method": name}
    try:
        result = attribute_all(runner, setup, budgets, options)
        model_s = _mean([s.model_seconds for s in result.stats])
        wall_s = _mean([s.total_seconds for s in result.stats])
        row.update(
            features=result.features, queries=_mean(result.queries), wall_s=wall_s, model_s=model_s,
            overhead_s=max(wall_s - model_s, 0.0),
        )
        # A random ranking's fine order is its point: no energy preference among near ties.
        rank_rtol = 0.0 if isinstance(runner, Naive) and runner.kind == "random" else DEFAULT_RTOL
        row.update(_score(setup, result, ks, n_steps, max_batch, rank_rtol))
        row["error"] = None
        return row, result
    except Exception as error:  # one failing method (e.g. no gradients for IG) keeps the rest
        if strict:
            raise
        # The notes FreqReX's oracle adds to the model's own error (what to do) belong in the row too.
        row["error"] = "; ".join([f"{type(error).__name__}: {error}", *getattr(error, "__notes__", [])])
        warnings.warn(f"compare_methods: {name} failed: {row['error']}", stacklevel=3)
        return row, None


def run_all(
    registry: Dict[str, Any], setup: Setup, budgets: List[int], equal_budgets: bool, options: RunOptions,
    ks: List[int], n_steps: int, max_batch: Optional[int], strict: bool, show_progress: bool,
) -> List[Dict[str, Any]]:
    """Every method's row, in registry order; the one named "FreqReX" runs first, to set the budgets
    (with ``equal_budgets``)."""
    from tqdm.auto import tqdm

    rows: Dict[str, Dict[str, Any]] = {}
    order = sorted(registry, key=lambda m: m != "FreqReX")
    # One bar over the methods (a notebook widget where ipywidgets exists), naming the one running.
    bar = tqdm(
        total=len(order), desc=f"compare on {setup.clips.shape[0]} clips", unit="method", file=sys.stderr,
        disable=not show_progress, dynamic_ncols=True,
    )
    with bar:
        for name in order:
            bar.set_postfix_str(name)
            rows[name], result = _run_method(name, registry[name], setup, budgets, options, ks, n_steps, max_batch, strict)
            if name == "FreqReX" and result is not None and equal_budgets:
                budgets = list(result.queries)
            bar.update(1)
    return [rows[name] for name in registry]
