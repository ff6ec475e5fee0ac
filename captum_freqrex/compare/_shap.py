"""The ``shap`` package's explainers as runners of a comparison (the ``shap`` extra)."""

from __future__ import annotations

import warnings
from typing import Any, Tuple

import numpy as np
import torch
from torch import Tensor, nn

from captum_freqrex._core.forward_wrapper import FrequencyForward
from captum_freqrex.compare._runners import Clip, PerClipMethod, require_module


#: The ``shap`` package's explainers :func:`compare_methods` knows by name (the ``shap`` extra).
SHAP_METHODS: Tuple[str, ...] = ("GradientExplainer", "KernelExplainer")


def require_shap(method: str) -> Any:
    """The ``shap`` module, or an ImportError that names the extra."""
    return require_module("shap", f"{method} is an explainer of the shap package", "shap", "shap")


class _TargetScore(nn.Module):
    """FrequencyForward's score of one target as a ``(N, 1)`` output, the one output shap explains."""

    def __init__(self, wrapped: FrequencyForward, target: Any) -> None:
        super().__init__()
        self.wrapped = wrapped
        self.target = target

    def forward(self, coefficients: Tensor) -> Tensor:
        scores = self.wrapped(coefficients)
        if self.target is None:  # a single-output model: its one score
            return scores.reshape(scores.shape[0], -1)[:, :1]
        index = self.target if isinstance(self.target, tuple) else (self.target,)
        return scores[(slice(None),) + tuple(index)].reshape(-1, 1)


class ShapMethod(PerClipMethod):
    r"""An explainer of the ``shap`` package in a comparison, over each clip's frequency features.

    * ``"GradientExplainer"`` (expected gradients): shap's PyTorch explainer on
      :class:`FrequencyForward`'s score of the target, with every bin removed (``wrapped.zeros()``)
      as its background; ``nsamples`` defaults to the clip's query budget (each sample is one
      model row and one backward pass), ``rseed`` to the comparison's seed.
    * ``"KernelExplainer"`` (Kernel SHAP): model-agnostic, over the comparison's features (or
      ``band_mask`` when they are too many, as KernelShap): a coalition keeps its features and
      removes the others; the background is every feature removed. ``nsamples`` defaults to the
      clip's query budget and ``l1_reg`` to False (no feature selection: every feature gets a
      value, as with Captum's KernelShap).

    Needs the ``shap`` extra (``pip install "captum_freqrex[shap]"``).

    Args:
        explainer (str): ``"GradientExplainer"`` or ``"KernelExplainer"``.
        **shap_values_kwargs: Keywords of the explainer's ``shap_values`` (``nsamples``,
                    ``l1_reg``, ...), over the defaults above.
    """

    def __init__(self, explainer: str, **shap_values_kwargs: Any) -> None:
        if explainer not in SHAP_METHODS:
            raise ValueError(f"explainer must be one of {list(SHAP_METHODS)}, got {explainer!r}")
        self.explainer = explainer
        self.per_feature_cost = explainer == "KernelExplainer"
        self.shap_values_kwargs = shap_values_kwargs

    def _attribute(self, clip: Clip) -> Tensor:
        shap = require_shap(self.explainer)
        score = _TargetScore(clip.wrapped, clip.target)
        if self.explainer == "GradientExplainer":
            kwargs = {"nsamples": max(clip.budget, 1), "rseed": clip.seed, **self.shap_values_kwargs}
            explainer = shap.GradientExplainer(score, clip.baselines, batch_size=clip.perturbations_per_eval)
            with torch.enable_grad():
                values = explainer.shap_values(clip.inputs, **kwargs)
            values = torch.as_tensor(np.asarray(values), dtype=clip.inputs.dtype, device=clip.inputs.device)
            return values.reshape(clip.inputs.shape)
        return self._kernel(shap, score, clip)

    def _kernel(self, shap: Any, score: _TargetScore, clip: Clip) -> Tensor:
        grid = clip.inputs.shape
        ids = clip.feature_mask.reshape(-1) if clip.feature_mask is not None else torch.arange(clip.inputs.numel())
        ids = ids.to(clip.inputs.device)
        n_features = int(ids.max()) + 1

        def coalition_scores(coalitions: Any) -> Any:  # (N, n_features) 0/1 -> (N,) target scores
            keep = torch.as_tensor(coalitions, dtype=clip.inputs.dtype, device=clip.inputs.device)[:, ids]
            keep = keep.reshape((keep.shape[0],) + tuple(grid[1:]))
            with torch.no_grad():
                rows = [score(part) for part in keep.split(clip.perturbations_per_eval)]
            return torch.cat(rows)[:, 0].double().cpu().numpy()

        explainer = shap.KernelExplainer(coalition_scores, np.zeros((1, n_features)))
        kwargs = {"nsamples": max(clip.budget, 2), "l1_reg": False, "silent": True, **self.shap_values_kwargs}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            values = explainer.shap_values(np.ones((1, n_features)), **kwargs)
        phi = torch.as_tensor(np.asarray(values), dtype=clip.inputs.dtype).reshape(-1)[:n_features]
        return phi.to(clip.inputs.device)[ids].reshape(grid)
