"""FreqReX vs Captum's methods, the shap package and naive rankings over the same frequency features.

:func:`compare_methods` attributes a batch of clips with a registry of methods ``{name: method}``
and scores every ranking with :mod:`captum_freqrex.metrics` over the same evaluation features:
flip rate when the top-k features are removed, the minimal sufficient prefix, deletion and
insertion AUC; and every method's cost is counted the same way, by the one caller of the model
every method goes through (:class:`~captum_freqrex._core.model.oracle.Oracle`, FreqReX's own;
the other methods get it as the model of each clip's :class:`FrequencyForward`): model queries,
wall time, model time vs overhead, all from one :class:`QueryStats` per clip.

A method is

* a built-in name (:data:`METHODS`): FreqReX in both search modes (what keeps the decision,
  ``"FreqReX"``, and what changes it when removed, ``"FreqReX-necessary"``), Captum's
  IntegratedGradients, KernelShap, Lime, FeatureAblation and ShapleyValueSampling, and two naive
  rankings (the spectral magnitude of each feature; a seeded random order); or a name of
  :data:`SHAP_METHODS` (the ``shap`` extra);
* any Captum ``Attribution``: a class, built on each clip's :class:`FrequencyForward`, or an
  instance built on a :class:`ClipForward` (which compare_methods binds to each clip), alone or in
  a :class:`CaptumMethod` with the keywords of its ``attribute``;
* a :class:`ShapMethod` (GradientExplainer, KernelExplainer), a configured :class:`FreqReX` or a
  :class:`FreqReXMethod`;
* a function ``(wrapped, inputs, target) -> attributions`` of one clip's FrequencyForward.

Each becomes a runner (an object that attributes every clip); the loop that runs and scores them
does not know which kind it runs.

Tractability. FeatureAblation costs one query per feature, ShapleyValueSampling one per feature
per permutation, and KernelShap and Lime fit a regression with one column per feature. Over the
240,001 single rfft bins of a 30 s clip at 16 kHz they are intractable, so whenever the evaluation
features outnumber ``max_perturbation_features`` these four methods (and KernelExplainer, and any
method made with ``per_feature_cost=True``) attribute over a band mask
instead (``band_mask``; by default log-spaced bands), and the table says so in its ``features``
column. Their rankings are still evaluated over the evaluation features: a band's score goes to all
of its bins, and inside that tie the louder bin ranks first (the rule every ranking gets), so a band
method can only single out a bin of its band by loudness, which is the honest cost of the band
approximation.

The package's modules, one job each: ``_setup`` (the clips, targets and features every method
shares), ``_runners`` and ``_shap`` (the methods as runners), ``_registry`` (names to runners),
``_scoring`` (running and scoring them), ``_table`` (the result and its notes) and ``_compare``
(:func:`compare_methods`, which composes them).
"""

from captum_freqrex.compare._compare import compare_methods
from captum_freqrex.compare._registry import METHODS
from captum_freqrex.compare._runners import CaptumMethod, ClipForward, FreqReXMethod
from captum_freqrex.compare._setup import ZooInputs, load_zoo_inputs
from captum_freqrex.compare._shap import SHAP_METHODS, ShapMethod
from captum_freqrex.compare._table import ComparisonTable

__all__ = [
    "ComparisonTable",
    "compare_methods",
    "load_zoo_inputs",
    "ZooInputs",
    "METHODS",
    "SHAP_METHODS",
    "CaptumMethod",
    "ClipForward",
    "FreqReXMethod",
    "ShapMethod",
]
