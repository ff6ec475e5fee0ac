"""Band screening: hierarchical screening of sets, for the fewest frequencies that flip a decision.

Meant for ``mode="necessary"``, where a set *passes* when removing it from the input changes the
decision. Captum's FeatureAblation removes each band once and ranks the bands by the drop of the
target's score; a top-k of single frequencies then has to be guessed inside the best band (its
loudest bins). Band screening spends the same queries on a tree instead:

1. **Screen bands.** The feature axis is cut into ``n_bands`` contiguous bands of equal width
   and, screened alongside them, into ``log_bands`` log-width bands, of which those narrower than
   an equal-width band are kept: the low end of an rfft axis, where one equal-width band lumps
   together the narrow bands a log-frequency model hears apart (speech models flip on a 9-bin
   low band). On a feature axis that is not one rfft axis ordered by frequency (grouped bands,
   STFT cells, several channels) the log-width bands refine only its first features:
   ``log_bands=0`` turns them off. Each band's removal is queried (one batch); every screened set
   gets a verdict (does its removal flip the decision?) and a graded score (how far behind the
   target falls).
2. **Descend.** The next set to open is the deepest screened set whose removal flipped the
   decision (best score first); when none is left, the best-scoring set. Opening a set screens its
   ``branching`` equal sub-bands and, as one more set, its ``core_size`` loudest features (its
   *core*); once it holds at most ``leaf_size`` features (or is a core), each of its features
   alone. So the first queries after the bands go to the single frequencies inside the band that
   flips most clearly, and every later batch to the next most promising band. The cores are there
   because these models are not monotone in what is removed: removing the few peaks of a band can
   flip a decision that removing the whole band (peaks and floor) keeps, and no contiguous
   sub-band holds those peaks without much of the floor.
3. **Responsibility.** A feature's value is ``1 / |R|`` for the smallest screened set ``R``
   holding it whose removal flipped the decision: 1 for a frequency whose removal alone flips it
   (a counterfactual cause, responsibility 1 in the Halpern-Pearl sense), ``1/|R|`` - the degree
   ``R`` would give each member were it a minimal cause - for the members of a flipping band that
   was not resolved further, 0 for features in no flipping set (the whole spectrum does not
   count). Values are not normalised; of several single flips, the answer (the quietest found,
   step 5) gets :data:`LEAD_VALUE` so that it ranks first.
4. **Peaks alongside.** These models are not monotone in what is removed, and a band that holds a
   flipping frequency need not flip when removed whole: the bins around it can pull the other
   way (on held-out percussion, single bins of a partial near 2 kHz flip a decision that no band
   holding them flips). So the spectral peaks (:func:`spectral_peaks`: the local maxima of the
   energy within 1/800 of the axis on either side, a few hundred on any rfft axis) are screened
   one by one, loudest first, in batches of ``peak_batch``, interleaved with the descent: once the
   descent has spent ``peak_lead`` queries beyond the first level, the next batch goes to the
   peaks whenever they have spent no more than the descent beyond that lead. A feature screened
   alone is never queried twice (a peak the descent reaches keeps its verdict, as does a core's
   member met again in its band).
5. **Quieter flips.** Flipping frequencies cluster (a held-out percussion clip with a single-bin
   flip has a median of 98 of them, their SNRs 20 dB apart), and the first the descent reaches
   need not be a quiet one. So when a single feature flips the decision and the search stops
   there, ``quieter_probes`` (32) of the features quieter than the quietest flip found, within 32
   features of it, spread evenly over their energy ranks (the quietest and the loudest of them
   among them: the quietest are floor bins that rarely flip), are screened alone, the quietest
   first, 8 per model call, until one flips; the quietest single flip found is the search's
   answer and, where other single flips were found, it leads the ranking (value
   :data:`LEAD_VALUE`, 2, above their 1: the ranking breaks ties by the louder feature). On every
   2nd held-out percussion clip the median SNR@1 of the flips rose from 31.9 to 38.2 dB
   (``percussion-wave`` 27.1 to 33.5), the same clips flipping at k = 1, 8-11 more queries a clip
   (``benchmarks/single_bin_limit.py``).
6. **Around the flip.** Then one more batch screens two nested chains of sets holding the
   answer: the windows of 3, 5, 9 and 17 features centred on it (``flip_windows`` of them), and
   the feature with its 2, 4 and 8 quietest neighbours within 8 features either side. The
   flipping sets of one chain give their members ``1 / |set|``, so the top of the ranking is a
   set whose removal flips too where one was found: the quiet chain where its set of 5 flips
   (the quieter of the two where both do), since a top-5 removal of the loud flanks of a peak is
   a far louder manipulation than of its quiet neighbours; the windows otherwise
   (``details["around_flip"]`` says which).
7. **Unions of the best singles.** When the screening ends with no single feature whose removal
   flips the decision (the budget spent, or nothing left to open), one more batch screens the
   unions of the single features whose removals moved the target furthest, none of which flips
   it alone: the best 2, 3, 4, 5 and 8 (``union_sizes``; only features whose removal moved the
   target's score at all, beyond float noise, so a feature the model ignores is in none). A
   decision that only flips when frequencies from several bands are removed together - two
   partials of a drum, say - is out of reach of the tree, whose sets are contiguous bands, their
   cores and single features; on held-out ``percussion-wave`` clips with no single-bin flip, two
   or three such frequencies flip it. A flipping union of ``k`` gives its members ``1 / k`` like
   any flipping set (so the best ``k`` head the ranking where the union of ``k`` flips), and where
   no union flips they get nothing. The queries for the unions (and one for the unmasked input's
   score where the caller did not pass it) are kept back from the budget.
8. **Loud runs.** When no union flips the decision either, the loudest tenth of the features,
   in id order, is cut into 32 runs (:mod:`~captum_freqrex._core.search.loud_runs`): each run is
   removed alone, then the unions of the runs whose removal moved the target furthest, until one
   flips it (at most 41 queries). That removal is shrunk while it still flips the decision, the
   quietest features first (the deletions of :func:`~captum_freqrex._core.search.shrink.shrink_set`,
   at most :data:`LOUD_RUN_SHRINK_QUERIES`), and its members get ``1 / |set|``
   (``details["loud_run_flip"]`` its size). A decision that no band, core, single feature or union
   flips can still flip when a few dozen loud bins scattered over a region go together, since
   removing the band that holds them takes their context too. On every 16th held-out speech
   clip the all-zero answers went from 18 of 33 to 9 (the new answers 31-1,306 bins), and on
   every 4th percussion clip the wide parts (5 answers, 1,000-4,000 bins) gave way to removals of
   79-381 bins; no answer's smallest flipping set grew on any of five zoo models
   (``benchmarks/necessary_answers.py``).
   They run on what the budget leaves, none kept back: where it cannot pay for the runs they are
   not asked (``loud_runs=False`` turns them off).
9. **Wide parts.** When removing everything (the baseline alone) changes the decision but nothing
   screened so far did, not even a union or the loud runs, one more batch removes the parts of equal splits of the
   whole axis, the narrowest first: its eighths, quarters and halves (``wide_splits``, 14
   queries, kept back from the budget only while no screened set has flipped). A decision that
   rests on much of the spectrum at once - a soft snare through the percussion model, whose
   removals of a 1/48 band, a core or a single bin all keep it - then gets the narrowest part
   whose removal flips it (each member ``1 / its size``, ``details["wide_flip"]`` its size)
   instead of an all-zero answer: on every 4th held-out percussion clip, 8 of 33 answers were all
   zeros before, 2 after (``percussion-wave`` 2 and 0, Silero VAD 27 and 11 of 28), the flips at
   k = 1 and 5 the same (``benchmarks/necessary_answers.py``).

The screening runs whether or not removing the whole spectrum (the baseline alone) changes the
decision: a model need not be monotone, and removing one band can change a decision that removing
everything keeps (a classifier that hears silence as the clip's class, say). Only when no screened
set flips the decision within the budget is every responsibility 0 (the explainer then warns).

The smallest flipping set screened is ``details["answer"]``, its feature ids (the lead where the
quieter features were probed, else the quietest of the smallest; None where nothing flipped):
where several sets of that size flip, their members tie in value and the ranking, which breaks
ties by loudness, mixes them, so :attr:`Explanation.manipulation` removes this set rather than the
ranking's top; ``details["answer_shrunk"]`` says whether it was shrunk already or is known to be
minimal (a single feature, a loud-run removal, or two features each screened alone without
flipping the decision): the manipulation shrinks the others while their removal still flips.

The search stops (``stopped_by``) at the first single feature whose removal alone flips the
decision (``"minimal"``: nothing smaller flips it; ``stop_at_single=False`` screens on); when
``patience`` (500) queries beyond the first level have passed since it last found a removal that
flips the decision, or since the first level where it found none (``"patience"``: the budget is a
cap, not a quota; on 143 held-out clips of five models the median queries a clip fell from
996-999 to 578-596, every single flip found as before, one five-bin flip of 45 lost); when the budget
(``max_queries``, less what the unions and the wide parts keep back) cannot pay for the next
opening and the peaks have used what is left (``"max_queries"``); or when no set is left to open
and no peak to screen (``"searches"``). In the last three cases the unions come after. A tie
(the target level with another class) never counts as a flip. It ignores the refinement's other
knobs. Queries: the first level's bands to start (``n_bands`` plus the narrow log-width ones: 70 on
8,001 bins with the defaults), then ``branching + 1`` (with a core) or at most ``leaf_size`` per
opening, and from ``peak_lead`` queries on as many again for the peaks; with the defaults (48, 8,
16, 32, 5) a single flipping frequency on 8,001 bins is reached after at most 94 queries when one
exists under the best band, at most 32 more to quieter features near it and at most 7 to the sets
around the answer. Where none is found,
the unions take their 5 queries at the end, the loud runs at most 121, and where nothing flipped
the wide parts their 14.

When to use it: flip rates and manipulation (the fewest frequencies whose removal fools the
model). It is no estimate of responsibility over the whole spectrum (the refinement is), and it
looks for removals of contiguous bands, of the cores of the bands it opens, of single features
and, at the end, of unions of the best single features and of runs of the loudest features: a
decision that flips only when quiet frequencies scattered over several bands are removed
together, none of which moves the target much alone, is out of its reach (every band then
screens as "no flip" and the descent follows the graded scores, with no guarantee).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Optional, Sequence

import torch
from torch import Tensor

from captum_freqrex._core.search import loud_runs
from captum_freqrex._core.search.base import SearchContext, SearchResult
from captum_freqrex._core.search.shrink import Ids, shrink_set
from captum_freqrex._core.spectral.space import Range, ids_to_mask, ranges_to_mask
from captum_freqrex._utils.validation import as_bool, as_int

#: Features within this share of the feature axis of a louder one are not a peak of their own
#: (1/800 of an rfft axis is 10 Hz at 16 kHz, whatever the clip's length).
PEAK_SPACING = 1 / 800

#: Half-widths of the windows screened around the first single flipping feature (3 to 17 features).
FLIP_WINDOWS = (1, 2, 4, 8)

#: Reach (features either side) of the quiet chain screened around a single flipping feature.
QUIET_REACH = 8

#: Neighbours added to the flipping feature in each set of a quiet chain (sets of 3, 5 and 9).
QUIET_SIZES = (2, 4, 8)

#: Sizes of the unions of the best single features screened when no single feature flips.
UNION_SIZES = (2, 3, 4, 5, 8)

#: Most features quieter than the first single flips probed alone for a quieter flip, spread over
#: the energy ranks of those in reach (see :meth:`BandScreening._quieter`).
QUIETER_PROBES = 32

#: Reach (features either side) of the quieter probe around the quietest single flip found.
QUIETER_REACH = 32

#: Quieter features asked per model call, quietest first, until one flips the decision.
QUIETER_BATCH = 8

#: Value of the quietest single flip the screening found, where it probed for quieter ones and
#: found other single flips too: above their 1, so that it leads the ranking (whose tie-break puts
#: the louder of equal values first).
LEAD_VALUE = 2.0

#: Queries the screening goes on, beyond its first level, without finding a removal that flips the
#: decision: then it stops (``stopped_by="patience"``) and the unions and wide parts end it. On 99
#: held-out clips (every 4th percussion and ``percussion-wave``, every 16th speech) every single
#: flip came within 432 queries of the first level and all but two within 189; the clips without
#: one spent the whole 1,000.
PATIENCE = 500

#: Equal splits of the feature axis whose parts are screened, the narrowest first, when the screening
#: ends with no removal that flips the decision though removing everything does (see run).
WIDE_SPLITS = (8, 4, 2)

#: Most queries of the shrink of a removal of loud runs that flips the decision (see
#: BandScreening._loud_runs). With 40, the 9 new answers on every 16th held-out speech clip were
#: 41-1,500 bins (median 337); with 80, 31-1,306 (median 67), 40 queries more where a run flips.
LOUD_RUN_SHRINK_QUERIES = 80

#: A single feature joins the unions only if its removal moved the target's graded score by more
#: than this (float noise: a feature the model ignores moves it by less).
UNION_MIN_GAIN = 1e-5


def spectral_peaks(energy: Tensor, spacing: float = PEAK_SPACING) -> Tensor:
    r"""The local maxima of ``energy`` along the feature axis, loudest first.

    A feature is a peak when no feature within ``spacing`` of the axis (at least one id) on either
    side is louder and it has energy; of equal neighbours the lowest id is kept.

    Args:
        energy (Tensor): ``(n_features,)`` spectral energy of each feature.
        spacing (float, optional): Half-width of the neighbourhood, as a share of the features.
                    Default: :data:`PEAK_SPACING`

    Returns:
        Tensor: ``(n_peaks,)`` long feature ids, loudest first (ties to the lower id).
    """
    values = energy.detach().double().cpu().flatten()
    n = values.numel()
    if n == 0:
        return torch.zeros(0, dtype=torch.long)
    width = max(1, int(spacing * n))
    padded = torch.nn.functional.pad(values.view(1, 1, -1), (width, width), value=float("-inf"))
    local = torch.nn.functional.max_pool1d(padded, 2 * width + 1, stride=1).view(-1)
    # Of a run of equal maxima only the first: its left neighbour must be strictly quieter.
    left = torch.cat([torch.tensor([float("-inf")], dtype=values.dtype), values[:-1]])
    ids = ((values >= local) & (values > 0) & (values != left)).nonzero().flatten()
    order = torch.sort(values[ids], descending=True, stable=True).indices
    return ids[order]


@dataclass
class _Node:
    lo: int
    hi: int
    depth: int
    passes: bool = False
    score: float = float("-inf")
    opened: bool = False
    children: List["_Node"] = field(default_factory=list)
    core: Optional[List[int]] = None  # a band's loudest features (or a union), screened as one set
    peak: bool = False  # a spectral peak screened alone, outside the tree
    union: bool = False  # a union of the best single features, outside the tree
    wide: bool = False  # a part of an equal split of the whole axis, screened only where nothing else flipped
    loud_run: bool = False  # a removal of loud runs that flips, or that removal shrunk (see _loud_runs)
    around: str = ""  # a set around a single flip: "windows" (contiguous) or "quiet" (see _chains)

    @property
    def size(self) -> int:
        return len(self.core) if self.core is not None else self.hi - self.lo

    def ranges(self) -> List[Range]:
        return [(i, i + 1) for i in self.core] if self.core is not None else [(self.lo, self.hi)]


def _five_set_loudness(chain: List[_Node], energy: Tensor) -> Optional[float]:
    # The energy of a chain's set of 5 features where its removal flips the decision (None: no
    # such set, or it does not flip): the loudness of the top-5 manipulation the chain gives.
    five = next((node for node in chain if node.size == 5 and node.passes), None)
    if five is None:
        return None
    return float(energy[[i for lo, hi in five.ranges() for i in range(lo, hi)]].sum())


def _equal_cuts(lo: int, hi: int, parts: int) -> List[Range]:
    bounds = torch.linspace(lo, hi, min(parts, hi - lo) + 1).round().long().tolist()
    return [(a, b) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]


def _log_cuts(n: int, parts: int) -> List[Range]:
    # Geometric bounds from feature 1 up, feature 0 (DC) alone first; at the bottom, bands
    # narrower than one feature collapse into single features.
    bounds = sorted({0, *torch.logspace(0, float(torch.log10(torch.tensor(float(n)))), parts + 1).round().long().tolist()})
    bounds = [b for b in bounds if b <= n]
    if bounds[-1] != n:
        bounds.append(n)
    return [(a, b) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]


def _first_level(n: int, n_bands: int, log_bands: int) -> List[Range]:
    # Equal-width bands, plus the log-width bands narrower than them: the low end, where one
    # equal-width band spans many of the narrow bands a log-frequency model hears apart.
    equal = _equal_cuts(0, n, n_bands)
    if log_bands < 2:
        return equal
    width = n / min(n_bands, n)
    extra = [c for c in _log_cuts(n, log_bands) if c[1] - c[0] < width and c not in equal]
    return equal + extra


class BandScreening:
    r"""Hierarchical screening of contiguous bands and their loudest features, then of single
    features, with the spectral peaks screened alone alongside (see the module docstring).

    Args:
        n_bands (int, optional): Equal-width bands screened first. Default: 48
        branching (int, optional): Sub-bands screened when a band is opened. Default: 8
        leaf_size (int, optional): A band of at most this many features is opened feature by
                    feature. Default: 16
        log_bands (int, optional): Log-width bands cut at the first level; the ones narrower
                    than an equal-width band are screened with them (0 or 1: none). Default: 32
        core_size (int, optional): Opening a band also screens its ``core_size`` loudest
                    features as one set (0: no cores). Default: 5
        stop_at_single (bool, optional): Stop at the first single feature whose removal alone
                    flips the decision (``stopped_by="minimal"``): no smaller removal exists, so
                    the rest of the budget could only find other single flips. False screens on
                    until the budget, the patience, the tree or the peaks run out. Default: True
        peak_batch (int, optional): Spectral peaks screened alone per batch, interleaved with
                    the descent (0: no peaks). Default: 8
        peak_lead (int, optional): Queries the descent spends beyond the first level before the
                    peaks take their turns. Default: 64
        flip_windows (int, optional): How many of the windows of 3, 5, 9 and 17 features centred
                    on the first single flip are screened after it (0 to 4), beside the quiet
                    chain (its sets of 3, 5 and 9; none with 0). Default: 4
        union_sizes (sequence of int, optional): Sizes of the unions of the best-scoring single
                    features screened when the screening ends with no single flip, each size at
                    least 2 (empty: none). Default: :data:`UNION_SIZES` (2, 3, 4, 5 and 8)
        wide_splits (sequence of int, optional): Equal splits of the whole feature axis whose
                    parts are screened, the narrowest first, when the screening ends with no
                    removal that flips the decision though removing everything does (each at least
                    2; empty: none). Default: :data:`WIDE_SPLITS` (8, 4 and 2 parts)
        patience (int, optional): The screening stops once this many queries beyond its first
                    level have passed since it last found a removal that flips the decision (none
                    yet: since the first level), and the unions and the wide parts end it
                    (``stopped_by="patience"``); None: only the budget stops it. Default:
                    :data:`PATIENCE` (500)
        quieter_probes (int, optional): After the first single flips, up to this many of the
                    quieter features within :data:`QUIETER_REACH` of the quietest of them, spread
                    over their energy ranks, are screened alone, quietest first,
                    :data:`QUIETER_BATCH` per model call, until one flips the decision; the
                    quietest single flip found then leads the ranking (0: no probe, and no lead).
                    Default: :data:`QUIETER_PROBES`
        loud_runs (bool, optional): Where the screening ends with no single feature and no union
                    whose removal flips the decision, remove runs of the loudest features and
                    their unions (:mod:`~captum_freqrex._core.search.loud_runs`), and shrink the
                    smallest removal that flips it (step 8 of the module docstring). Default: True

    The budget is ``context.options.max_queries``; with no budget (``max_queries=None``) the
    screening opens every band and core down to single features and screens every peak.
    """

    def __init__(self, n_bands: int = 48, branching: int = 8, leaf_size: int = 16, log_bands: int = 32,
                 core_size: int = 5, stop_at_single: bool = True, peak_batch: int = 8, peak_lead: int = 64,
                 flip_windows: int = 4, union_sizes: Sequence[int] = UNION_SIZES,
                 quieter_probes: int = QUIETER_PROBES, wide_splits: Sequence[int] = WIDE_SPLITS,
                 patience: Optional[int] = PATIENCE, loud_runs: bool = True) -> None:
        self.n_bands = as_int(n_bands, "n_bands", minimum=2)
        self.log_bands = as_int(log_bands, "log_bands", minimum=0)
        self.branching = as_int(branching, "branching", minimum=2)
        self.leaf_size = as_int(leaf_size, "leaf_size", minimum=1)
        self.core_size = as_int(core_size, "core_size", minimum=0)
        self.stop_at_single = as_bool(stop_at_single, "stop_at_single")
        self.peak_batch = as_int(peak_batch, "peak_batch", minimum=0)
        self.peak_lead = as_int(peak_lead, "peak_lead", minimum=0)
        self.flip_windows = as_int(flip_windows, "flip_windows", minimum=0, maximum=len(FLIP_WINDOWS))
        if isinstance(union_sizes, (str, bytes)) or not isinstance(union_sizes, Sequence):
            raise TypeError(f"union_sizes must be a sequence of ints >= 2, e.g. (2, 3, 5), got {union_sizes!r}")
        self.union_sizes = tuple(sorted({as_int(k, "union_sizes", minimum=2) for k in union_sizes}))
        self.quieter_probes = as_int(quieter_probes, "quieter_probes", minimum=0)
        if isinstance(wide_splits, (str, bytes)) or not isinstance(wide_splits, Sequence):
            raise TypeError(f"wide_splits must be a sequence of ints >= 2, e.g. (8, 4, 2), got {wide_splits!r}")
        self.wide_splits = tuple(sorted({as_int(k, "wide_splits", minimum=2) for k in wide_splits}, reverse=True))
        self.patience = None if patience is None else as_int(patience, "patience", minimum=1)
        self.loud_runs = as_bool(loud_runs, "loud_runs")

    def __repr__(self) -> str:
        return (f"BandScreening(n_bands={self.n_bands}, branching={self.branching}, leaf_size={self.leaf_size}, "
                f"log_bands={self.log_bands}, core_size={self.core_size}, stop_at_single={self.stop_at_single}, "
                f"peak_batch={self.peak_batch}, peak_lead={self.peak_lead}, flip_windows={self.flip_windows}, "
                f"union_sizes={self.union_sizes}, quieter_probes={self.quieter_probes}, "
                f"wide_splits={self.wide_splits}, patience={self.patience}, loud_runs={self.loud_runs})")

    def _children(self, node: _Node, energy: Tensor) -> List[_Node]:
        if node.core is not None or (node.depth > 0 and node.size <= self.leaf_size):
            features = node.core if node.core is not None else range(node.lo, node.hi)
            return [_Node(i, i + 1, node.depth + 1) for i in features]
        cuts = _first_level(node.hi, self.n_bands, self.log_bands) if node.depth == 0 else _equal_cuts(node.lo, node.hi, self.branching)
        children = [_Node(lo, hi, node.depth + 1) for lo, hi in cuts]
        if node.depth > 0 and node.size > self.core_size > 0:
            loudest = torch.topk(energy[node.lo : node.hi], self.core_size).indices + node.lo
            children.append(_Node(node.lo, node.hi, node.depth + 1, core=sorted(loudest.tolist())))
        return children

    @staticmethod
    def _next(nodes: List[_Node]) -> Optional[_Node]:
        closed = [n for n in nodes if not n.opened and n.size > 1]
        if not closed:
            return None
        flipping = [n for n in closed if n.passes]
        if flipping:
            return max(flipping, key=lambda n: (n.depth, n.score, -n.lo))
        return max(closed, key=lambda n: (n.score, n.depth, -n.lo))

    def _around(self, feature: int, context: SearchContext) -> List[_Node]:
        # Nested sets around a single flipping feature, screened in one batch; the flipping ones
        # of one chain rank the features beside it (the ranking's top-k is then a set whose
        # removal flips too). See _chains.
        energy = context.energy.detach().double().cpu()
        chains = self._chains(feature, context.n_features, energy)
        nodes = [node for chain in chains for node in chain]
        remaining = context.remaining
        if not nodes or (remaining is not None and remaining < len(nodes)):
            return []
        masks = ranges_to_mask([node.ranges() for node in nodes], context.n_features, context.device)
        verdicts = context.evaluate_sets(masks)
        for node, passed, score in zip(nodes, verdicts.passes.tolist(), verdicts.score.tolist()):
            node.passes, node.score = bool(passed), float(score)
        # The quietest chain whose set of 5 flips (the first of equals); otherwise the windows.
        loudness = [_five_set_loudness(chain, energy) for chain in chains]
        flipping = [(value, index) for index, value in enumerate(loudness) if value is not None]
        return chains[min(flipping)[1]] if flipping else chains[0]

    def _quieter(self, singles: Dict[int, _Node], nodes: List[_Node], context: SearchContext) -> _Node:
        # The quietest single flip after probing the quieter features near the quietest one found:
        # of the features within QUIETER_REACH of it, quieter than it and not screened yet, up to
        # quieter_probes spread over their energy ranks (the quietest of them are floor bins that
        # rarely flip), the quietest first, QUIETER_BATCH per model call until one flips (so the
        # first that flips is the quietest of those asked). Flipping bins cluster (held-out percussion clips have a
        # median of 98 to 112 single-bin flips, 20 dB apart), and the first one the descent
        # reaches need not be a quiet one; the set of 7 features around it (_around) is
        # screened after, within what the budget leaves.
        energy = context.energy.detach().double().cpu()
        flips = [m for m in singles.values() if m.passes]
        quietest = min(flips, key=lambda m: (float(energy[m.lo]), m.lo))
        feature, level = quietest.lo, float(energy[quietest.lo])
        near = range(max(0, feature - QUIETER_REACH), min(context.n_features, feature + QUIETER_REACH + 1))
        quieter = _quietest_first((i for i in near if i not in singles and float(energy[i]) < level), feature, energy)
        candidates = _spread(quieter, self.quieter_probes)
        around = len(FLIP_WINDOWS[: self.flip_windows]) + len(QUIET_SIZES)  # what _around asks at most
        remaining = context.remaining
        if remaining is not None:
            candidates = candidates[: max(remaining - around, 0)]
        for start in range(0, len(candidates), QUIETER_BATCH):
            fresh = [_Node(i, i + 1, 1) for i in candidates[start : start + QUIETER_BATCH]]
            _screen(fresh, context, singles)
            nodes.extend(fresh)
            flipped = [m for m in fresh if m.passes]
            if flipped:
                return flipped[0]
        return quietest

    def _chains(self, feature: int, n: int, energy: Tensor) -> List[List[_Node]]:
        # The windows of 3, 5, 9 and 17 features centred on the feature, and the feature with its
        # 2, 4 and 8 quietest neighbours within QUIET_REACH of it: a quieter top-k is a quieter
        # manipulation, where its removal flips too. No quiet chain without the windows.
        windows: List[_Node] = []
        for half in FLIP_WINDOWS[: self.flip_windows]:
            lo, hi = max(0, feature - half), min(n, feature + half + 1)
            if hi - lo > 1 and all((w.lo, w.hi) != (lo, hi) for w in windows):
                windows.append(_Node(lo, hi, 1, around="windows"))
        if not windows:
            return []
        neighbours = [i for i in range(max(0, feature - QUIET_REACH), min(n, feature + QUIET_REACH + 1)) if i != feature]
        quiet = _quietest_first(neighbours, feature, energy)
        chain = [_Node(feature, feature + 1, 1, core=sorted([feature, *quiet[:k]]), around="quiet")
                 for k in QUIET_SIZES if k <= len(quiet)]
        return [windows, chain] if chain else [windows]

    def _union_reserve(self, context: SearchContext) -> int:
        # Queries kept back for the unions: one per size, and one for the empty set's score
        # where the caller did not pass it. None for the loud runs: they take what the patience
        # leaves (about 400 of the default 1,000), and a small budget goes to the screening.
        if not self.union_sizes:
            return 0
        return len(self.union_sizes) + (context.empty_score is None)

    def _unions(self, singles: Dict[int, _Node], context: SearchContext) -> List[_Node]:
        # The unions of the single features whose removal moved the target most (none flipping
        # alone), the best first, one batch: where scattered frequencies flip the decision only
        # together, which no band, core or single removal shows.
        if not self.union_sizes:
            return []
        empty = context.empty_score
        if empty is None:
            if context.remaining == 0:
                return []
            empty = float(context.evaluate_sets(torch.zeros(1, context.n_features, device=context.device)).score[0])
        moved = sorted((m for m in singles.values() if not m.passes and m.score > empty + UNION_MIN_GAIN),
                       key=lambda m: (-m.score, m.lo))
        sizes = [k for k in self.union_sizes if k <= len(moved)]
        remaining = context.remaining
        if remaining is not None:
            sizes = sizes[:remaining]
        unions = [_Node(moved[0].lo, moved[0].lo + 1, 1, opened=True, union=True,
                        core=sorted(m.lo for m in moved[:k])) for k in sizes]
        _screen(unions, context, singles)
        return unions

    def _wide_parts(self, n: int) -> List[Range]:
        # The parts of the wide splits, the narrowest first, each once and none the whole axis.
        parts = [cut for k in self.wide_splits for cut in _equal_cuts(0, n, k) if cut != (0, n)]
        return list(dict.fromkeys(parts))

    def _wide(self, context: SearchContext, singles: Dict[int, _Node]) -> List[_Node]:
        # One batch of the wide parts: where removing everything flips the decision and nothing the
        # screening tried did, the narrowest wide part whose removal flips is the answer (its
        # members get 1 / its size) rather than no answer at all (a decision that rests on much of
        # the spectrum: 8 of 33 held-out percussion clips, every 4th, got only zeros before).
        parts = [cut for cut in self._wide_parts(context.n_features) if cut[1] - cut[0] > 1 or cut[0] not in singles]
        remaining = context.remaining
        if remaining is not None:
            parts = parts[:remaining]
        wide = [_Node(lo, hi, 1, opened=True, wide=True) for lo, hi in parts]
        _screen(wide, context, singles)
        return wide

    def _peaks_next(self, tree_spent: int, peak_spent: int) -> bool:
        # The peaks' turn once they have spent no more than the tree beyond its lead.
        return peak_spent + self.peak_lead <= tree_spent

    def run(self, context: SearchContext) -> SearchResult:
        r"""Screen bands and descend into the ones whose removal flips the decision, and screen the
        spectral peaks alongside."""
        n = context.n_features
        # The root is opened first whatever its verdict: when removing everything does not change
        # the decision, removing a band still may (a non-monotone model).
        root = _Node(0, n, 0, passes=context.root_passes, score=float("inf"))
        nodes = [root]
        singles: Dict[int, _Node] = {}  # every feature screened alone, by id: none is queried twice
        peaks = spectral_peaks(context.energy).tolist() if self.peak_batch else []
        peaks.reverse()  # popped from the end: loudest first
        tree_spent = peak_spent = 0
        tree_open = True
        stopped_by = "searches"
        lead: Optional[_Node] = None
        # Kept back: the unions' queries throughout, the wide parts' while they may be needed.
        union_reserve = self._union_reserve(context)
        wide_reserve = len(self._wide_parts(n)) if root.passes else 0
        flipped = False
        progress_at: Optional[int] = None  # queries when the first level ended or the last flip came
        while True:
            if self.patience is not None and progress_at is not None and context.queries - progress_at >= self.patience:
                stopped_by = "patience"
                break
            reserve = union_reserve + (0 if flipped else wide_reserve)
            node = self._next(nodes) if tree_open else None
            while peaks and peaks[-1] in singles:
                peaks.pop()
            if node is None and not peaks:
                break
            remaining = None if context.remaining is None else max(context.remaining - reserve, 0)
            if node is not None and (node is root or not peaks or not self._peaks_next(tree_spent, peak_spent)):
                # A feature already screened alone (a peak, a core's member) keeps its verdict.
                children = [singles.get(c.lo, c) if c.core is None and c.size == 1 else c
                            for c in self._children(node, context.energy)]
                fresh = [c for c in children if c.core is not None or c.size > 1 or c.lo not in singles]
                if remaining is not None and len(fresh) > remaining:
                    # The next opening does not fit: the peaks may still use what is left.
                    tree_open, stopped_by = False, "max_queries"
                    continue
                if node is not root:
                    tree_spent += len(fresh)
                node.opened, node.children = True, children
            else:
                if remaining is not None and remaining == 0:
                    stopped_by = "max_queries"
                    break
                take = self.peak_batch if remaining is None else min(self.peak_batch, remaining)
                fresh = _take_peaks(peaks, singles, take)
                peak_spent += len(fresh)
            _screen(fresh, context, singles)
            nodes.extend(fresh)
            fresh_flips = any(c.passes for c in fresh)
            if node is root or fresh_flips:
                progress_at = context.queries
            flipped = flipped or fresh_flips
            if self.stop_at_single and any(c.passes and c.size == 1 for c in fresh):
                stopped_by = "minimal"
                lead = self._after_single_flip(fresh, singles, nodes, context)
                break
        if stopped_by != "minimal":
            nodes.extend(self._without_single_flip(singles, context, wide=bool(wide_reserve) and not flipped))
        return _result(nodes, root, context, stopped_by, peak_spent, lead)

    def _after_single_flip(
        self, fresh: List[_Node], singles: Dict[int, _Node], nodes: List[_Node], context: SearchContext
    ) -> Optional[_Node]:
        # A batch held the first single flips: the quieter probe, then the sets around the answer
        # (added to ``nodes``). Returns the lead: the quietest single flip, where it was probed for.
        found = max((c for c in fresh if c.passes and c.size == 1), key=lambda c: (c.score, -c.lo))
        lead = None
        if self.quieter_probes:
            found = lead = self._quieter(singles, nodes, context)
        nodes.extend(self._around(found.ranges()[0][0], context))
        return lead

    def _without_single_flip(self, singles: Dict[int, _Node], context: SearchContext, wide: bool) -> List[_Node]:
        # The screening ended with no single flip: the unions of the best single features; where
        # none flips, the loud runs; then, where ``wide`` (nothing has flipped, removing everything
        # does) and neither flips, the wide parts.
        found = self._unions(singles, context)
        if not any(u.passes for u in found):
            found += self._loud_runs(context, singles, keep=len(self._wide_parts(context.n_features)) if wide else 0)
        if wide and not any(u.passes for u in found):
            return found + self._wide(context, singles)
        return found

    def _loud_runs(self, context: SearchContext, singles: Dict[int, _Node], keep: int) -> List[_Node]:
        # The smallest removal of runs of loud features that flips the decision, and that removal
        # shrunk while it still flips it (deletions in the manner of delta debugging, the quietest
        # first), as two flipping sets (empty: none found, or no room beside the ``keep`` queries
        # the wide parts may need). The shrunk set's members get 1 / its size, the others of the
        # first 1 / the first's size. A single feature screened alone already keeps its verdict
        # (a run of one, a shrink's last deletions).
        remaining = None if context.remaining is None else context.remaining - keep
        if not self.loud_runs or (remaining is not None and remaining < loud_runs.QUERIES):
            return []
        n, device = context.n_features, context.device
        loudest = context.loudest_first()

        def removed(sets: Sequence[Ids]) -> loud_runs.Verdicts:
            # A feature screened alone keeps its verdict; the other sets go to the mask as given
            # (runs and chunks are tensors of up to 10^4 ids, not lists).
            screened = [singles.get(int(members[0])) if len(members) == 1 else None for members in sets]
            todo = [members for members, node in zip(sets, screened) if node is None]
            verdicts = context.evaluate_sets(ids_to_mask(todo, n, device))
            fresh = iter(zip(verdicts.passes.tolist(), verdicts.score.tolist()))
            known = [(node.passes, node.score) if node is not None else next(fresh) for node in screened]
            return [bool(flip) for flip, _ in known], [float(score) for _, score in known]

        found = loud_runs.loud_run_flip(removed, loud_runs.loud_pool(loudest))
        if found is None:
            return []
        rank = torch.empty(n, dtype=torch.long)
        rank[loudest] = torch.arange(n)
        members = found[rank[found].argsort()].tolist()  # loudest first: the quiet ones go first
        budget = LOUD_RUN_SHRINK_QUERIES if context.remaining is None else min(LOUD_RUN_SHRINK_QUERIES, context.remaining - keep)
        shrunk, _ = shrink_set(lambda sets: removed(sets)[0], members, budget, torch.Generator().manual_seed(0), check=0,
                               spent=lambda: context.queries)
        sets = [members] + ([shrunk] if len(shrunk) < len(members) else [])
        return [_Node(ids[0], ids[0] + 1, 1, passes=True, opened=True, core=sorted(ids), loud_run=True) for ids in sets]


def _quietest_first(ids: Iterable[int], feature: int, energy: Tensor) -> List[int]:
    # Features by ascending energy, then by distance from ``feature``, then by id.
    return sorted(ids, key=lambda i: (float(energy[i]), abs(i - feature), i))


def _spread(ordered: List[int], count: int) -> List[int]:
    # ``count`` of ``ordered`` at evenly spaced positions, the first and the last among them, in
    # their order (all of them where there are no more than ``count``).
    if len(ordered) <= count:
        return list(ordered)
    if count <= 1:
        return list(ordered[:count])
    positions = torch.linspace(0, len(ordered) - 1, count).round().long().tolist()
    return [ordered[p] for p in dict.fromkeys(positions)]


def _take_peaks(peaks: List[int], singles: Dict[int, "_Node"], take: int) -> List["_Node"]:
    # Up to ``take`` peaks not screened alone yet, popped loudest first.
    fresh: List[_Node] = []
    while peaks and len(fresh) < take:
        feature = peaks.pop()
        if feature not in singles:
            fresh.append(_Node(feature, feature + 1, 1, peak=True))
    return fresh


def _screen(fresh: List["_Node"], context: SearchContext, singles: Dict[int, "_Node"]) -> None:
    # One model call: each node's removal, its verdict and score recorded (single features by id).
    if not fresh:
        return
    masks = ranges_to_mask([c.ranges() for c in fresh], context.n_features, context.device)
    verdicts = context.evaluate_sets(masks)
    for child, passed, score in zip(fresh, verdicts.passes.tolist(), verdicts.score.tolist()):
        child.passes, child.score = bool(passed), float(score)
        if child.size == 1 and child.core is None:
            singles[child.lo] = child


def _answer(nodes: List["_Node"], root: "_Node", lead: Optional["_Node"], energy: Tensor) -> Optional["_Node"]:
    # The smallest flipping set screened (None: none flipped): the lead where there is one, else the
    # quietest of the smallest (ties by screening order). Several sets of that size can flip, and
    # the ranking, which breaks their tied values by loudness, mixes them.
    if lead is not None:
        return lead
    flipped = [node for node in nodes if node.passes and node is not root]
    if not flipped:
        return None
    smallest = min(node.size for node in flipped)
    return min((node for node in flipped if node.size == smallest), key=lambda node: float(energy[_ids(node)].sum()))


def _known_minimal(answer: "_Node", nodes: List["_Node"]) -> bool:
    # Whether no feature of the answer can go, as far as the screening knows: a single feature; a
    # loud-run removal, shrunk already; or two features each screened alone without changing the
    # decision (removing the answer less either one is removing the other alone, known to fail:
    # the manipulation's shrink would ask both again). A node's score is set where it was screened.
    if answer.size == 1 or answer.loud_run:
        return True
    if answer.size != 2:
        return False
    failed = {_ids(m)[0] for m in nodes if m.size == 1 and not m.passes and m.score > float("-inf")}
    return set(_ids(answer)) <= failed


def _ids(node: "_Node") -> List[int]:
    # A node's feature ids, ascending.
    return sorted(i for lo, hi in node.ranges() for i in range(lo, hi))


def _result(
    nodes: List["_Node"], root: "_Node", context: SearchContext, stopped_by: str, peak_spent: int,
    lead: Optional["_Node"] = None,
) -> SearchResult:
    # Smallest flipping set per feature: larger sets first, smaller ones overwrite; the lead (the
    # quietest single flip, where the quieter features were probed) above the other single flips.
    values = torch.zeros(context.n_features, dtype=torch.float64)
    for node in sorted((m for m in nodes if m.passes and m is not root), key=lambda m: -m.size):
        for lo, hi in node.ranges():
            values[lo:hi] = 1.0 / node.size
    if lead is not None and int((values == 1.0).sum()) > 1:
        values[lead.lo] = LEAD_VALUE
    flips = len({m.lo for m in nodes if m.passes and m.size == 1})
    core_flips = sum(1 for m in nodes if m.passes and m.core is not None and not (m.union or m.around or m.loud_run))
    peak_flips = sum(1 for m in nodes if m.passes and m.peak)
    union_flips = [m.size for m in nodes if m.passes and m.union]
    wide_flips = [m.size for m in nodes if m.passes and m.wide]
    loud_run_flips = [m.size for m in nodes if m.passes and m.loud_run]
    answer = _answer(nodes, root, lead, context.energy)
    details = {"screened": len(nodes) - 1, "single_feature_flips": flips, "core_flips": core_flips,
               "answer": None if answer is None else _ids(answer),
               # Explanation.manipulation shrinks the other answers (bands, unions, wide parts)
               # while their removal flips.
               "answer_shrunk": answer is not None and _known_minimal(answer, nodes),
               "peaks_screened": peak_spent, "peak_flips": peak_flips, "union_flips": union_flips,
               "around_flip": next((m.around for m in nodes if m.around), None),
               "lead": lead.lo if lead is not None else None,
               "wide_flip": min(wide_flips) if wide_flips else None,
               "loud_run_flip": min(loud_run_flips) if loud_run_flips else None}
    return SearchResult(values, context.queries, stopped_by, details)
