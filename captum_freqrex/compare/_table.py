"""The result of a comparison: one row per method, every column, and the notes on how it was made."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

from torch import Tensor

from captum_freqrex._utils.csv_cells import write_rows
from captum_freqrex._utils.tables import rows_to_pandas
from captum_freqrex.compare._setup import Setup
from captum_freqrex.compare._shap import ShapMethod
from captum_freqrex.metrics._curves import MAX_SCAN_FEATURES


@dataclass
class ComparisonTable:
    r"""The result of :func:`compare_methods`: one row per method.

    Attributes:
        rows (list of dict): Per method: ``method``, ``features`` (what it attributed over),
                    ``queries`` / ``wall_s`` / ``model_s`` / ``overhead_s`` (per clip, mean, for
                    the attribution alone), ``flip@k`` (fraction of clips whose decision changes
                    when the top-k evaluation features are removed, in [0, 1]), ``snr_db@k``
                    (median SNR of that removal, dB), ``min_sufficient`` (median size of the
                    minimal sufficient prefix, in evaluation features, over the clips with one:
                    the first sufficient size evaluated, see
                    :func:`~captum_freqrex.metrics.minimal_sufficient_prefix`),
                    ``sufficient_found`` (fraction of clips with one), ``sufficient_monotone``
                    (fraction of clips whose sufficiency was monotone over the prefix sizes
                    evaluated; below 1, ``min_sufficient`` rests on a ranking that loses the
                    decision again as it grows, and the notes say so), ``deletion_auc`` /
                    ``insertion_auc`` (mean, in [0, 1]) and ``error`` (None, or why the method
                    failed).
        notes (list of str): How the table was made: features, budgets, what the columns count.
    """

    rows: List[Dict[str, Any]]
    notes: List[str] = field(default_factory=list)

    @property
    def columns(self) -> List[str]:
        """Column names, in first-seen order."""
        names: List[str] = []
        for row in self.rows:
            names += [key for key in row if key not in names]
        return names

    def row(self, method: str) -> Dict[str, Any]:
        """The row of one method."""
        for row in self.rows:
            if row["method"] == method:
                return row
        raise KeyError(f"no row for {method!r}; methods: {[r['method'] for r in self.rows]}")

    @staticmethod
    def _format(value: Any) -> str:
        if value is None:
            return "-"
        if isinstance(value, float):
            if math.isnan(value):
                return "nan"
            if math.isinf(value):
                return "inf" if value > 0 else "-inf"
            if value.is_integer():
                return str(int(value))
            return f"{value:.3f}" if abs(value) < 1000 else f"{value:.0f}"
        return str(value).replace("|", "/")

    def to_markdown(self) -> str:
        """The table as GitHub Markdown, followed by its notes as a list."""
        columns = self.columns
        lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
        lines += ["| " + " | ".join(self._format(row.get(c)) for c in columns) + " |" for row in self.rows]
        if self.notes:
            lines += [""] + [f"- {note}" for note in self.notes]
        return "\n".join(lines)

    def to_pandas(self) -> Any:
        """The table as a ``pandas.DataFrame``: one row per method, the columns of :meth:`to_csv`."""
        return rows_to_pandas(self.rows, self.columns)

    def to_csv(self, path: str) -> None:
        """Write the rows as CSV (one line per method; empty cells for missing values). Text cells a
        spreadsheet would run as a formula (a method named ``=...``, an error message) are neutralised."""
        with open(path, "w", newline="") as handle:
            write_rows(handle, self.rows, fieldnames=self.columns)

    def save(self, directory: str) -> Tuple[str, str]:
        r"""Write ``compare.md`` (table and notes) and ``compare.csv`` into ``directory``.

        Args:
            directory (str): The folder; created when missing.

        Returns:
            tuple of str: The paths of the Markdown and the CSV file.
        """
        os.makedirs(directory, exist_ok=True)
        markdown, table_csv = os.path.join(directory, "compare.md"), os.path.join(directory, "compare.csv")
        with open(markdown, "w") as handle:
            handle.write(self.to_markdown() + "\n")
        self.to_csv(table_csv)
        return markdown, table_csv

    def __str__(self) -> str:
        return self.to_markdown()


def build_table(
    setup: Setup, registry: Dict[str, Any], ks: List[int], waves: Tensor, rows: List[Dict[str, Any]],
    budget: Optional[int] = None,
) -> ComparisonTable:
    """The rows with every column (None where a method has no value), and the notes."""
    columns = ["method", "features", "queries", "wall_s", "model_s", "overhead_s"]
    columns += [f"flip@{k}" for k in ks] + [f"snr_db@{k}" for k in ks]
    columns += ["min_sufficient", "sufficient_found", "sufficient_monotone", "deletion_auc", "insertion_auc"]
    if setup.band_mask is not None:
        columns += [f"flip@{k}_bands" for k in ks] + [f"snr_db@{k}_bands" for k in ks]
    columns += ["error"]
    table_rows = [{c: row.get(c) for c in columns} for row in rows]
    coarse = sorted(name for name, runner in registry.items() if getattr(runner, "per_feature_cost", False))
    notes = _notes(setup, list(registry), coarse, ks, waves, table_rows, budget)
    sampled = [name for name, runner in registry.items() if isinstance(runner, ShapMethod)]
    if sampled and ("FreqReX" in registry or budget is not None):
        count = "FreqReX's number of queries on each clip" if budget is None else f"budget={budget} on each clip"
        notes.append(
            f"{', '.join(sampled)}: shap's nsamples is {count} (a GradientExplainer "
            "sample is one model row and one backward pass, a KernelExplainer sample one coalition)."
        )
    return ComparisonTable(table_rows, notes)


def _prefix_notes(setup: Setup, rows: List[Dict[str, Any]], n_clips: int) -> List[str]:
    """What min_sufficient means here, and which methods' values rest on non-monotone rankings."""
    exhaustive = setup.n_eval <= MAX_SCAN_FEATURES
    notes = [
        "min_sufficient is the first top-k that keeps the decision alone among the prefix sizes evaluated "
        + (
            f"(every size: {setup.n_eval} evaluation features), so it is the smallest one. "
            if exhaustive
            else "(a batched exponential + bisection search), the smallest one when sufficiency is monotone "
            "along the ranking. "
        )
        + "sufficient_monotone is the share of clips whose evaluated sizes were monotone (no larger prefix "
        "lost the decision)."
    ]
    non_monotone = [
        f"{row['method']} ({round((1.0 - row['sufficient_monotone']) * n_clips)} of {n_clips} clips)"
        for row in rows
        if row.get("sufficient_monotone") is not None and row["sufficient_monotone"] < 1.0
    ]
    if non_monotone:
        notes.append(
            f"min_sufficient rests on a non-monotone ranking for {', '.join(non_monotone)}: there a prefix "
            "larger than the first sufficient one loses the decision again, so it is not a size from which "
            "on every prefix suffices"
            + ("." if exhaustive else ", and a smaller sufficient prefix may lie between the sizes evaluated.")
        )
    return notes


def _notes(
    setup: Setup, names: List[str], coarse: List[str], ks: List[int], waves: Tensor, rows: List[Dict[str, Any]],
    budget: Optional[int] = None,
) -> List[str]:
    shape = "x".join(str(s) for s in waves.shape[1:])
    notes = [
        f"{waves.shape[0]} clips of {shape} samples; targets (flat class indices): {setup.targets.tolist()}.",
        f"Every ranking is evaluated over the same {setup.eval_features}: flip@k removes the top-k of them "
        f"(k = {', '.join(map(str, ks))}), min_sufficient counts them; a band's score goes to all its bins, and ties rank the louder bin first.",
        "queries, wall_s, model_s and overhead_s are per-clip means of the attribution alone (the metrics' "
        "own queries are not counted); IntegratedGradients' backward passes fall in overhead_s.",
    ]
    notes += _prefix_notes(setup, rows, waves.shape[0])
    if setup.band_mask is not None:
        if coarse:
            notes.append(
                f"{', '.join(coarse)} attributed over {setup.band_features}, because the {setup.n_eval} "
                f"evaluation features exceed max_perturbation_features: their cost grows with the number "
                f"of features (FeatureAblation needs one query per feature), which makes them intractable "
                f"over single bins of long clips (240,001 for 30 s at 16 kHz). Inside a band their scores "
                f"tie, so their top-k bins are the band's loudest ones."
            )
        notes.append(
            f"Columns ending in _bands evaluate every ranking over those {setup.band_features} instead "
            f"(a feature scores the mean of its bins; flip@k_bands removes the top-k bands)."
        )
    if "FreqReX" in names and budget is None:
        notes.append(
            "Equal budgets: KernelShap and Lime draw as many samples as FreqReX made queries on each clip; "
            "ShapleyValueSampling gets the number of permutations closest to that many queries."
        )
    elif "FreqReX" in names:
        freqrex = next((row["queries"] for row in rows if row.get("method") == "FreqReX"), None)
        made = f" (FreqReX made {freqrex:g} a clip, mean)" if isinstance(freqrex, (int, float)) else ""
        notes.append(
            f"Budgets given, not equal: KernelShap and Lime draw budget={budget} samples on each clip{made}; "
            "ShapleyValueSampling gets the number of permutations closest to that many queries."
        )
    return notes
