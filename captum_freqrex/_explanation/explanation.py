"""The result of :meth:`FreqReX.explain`: responsibility, ranking and the certified causal sets.

Besides the tensors, an :class:`Explanation` renders itself for people and files: a JSON-ready
:meth:`~Explanation.summary` that lists each set's frequencies in Hz, a CSV of every bin
(:meth:`~Explanation.to_csv`), a self-contained HTML report (:meth:`~Explanation.to_html`), WAVs
and plots; and it saves to and loads from one file (:meth:`~Explanation.save`,
:meth:`~Explanation.load`).

This module holds the data. The summary and the CSV are built in ``records.py``, the file in
``file.py``. The WAV, plot and HTML methods import ``captum_freqrex.audio``, ``.plotting`` and
``.report`` inside the method (as scikit-learn's ``Display.plot`` imports matplotlib): importing
the package loads none of them, and a missing optional dependency raises its own ``ImportError``
that names the extra.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor

from captum_freqrex._core.spectral.domains import SpectralDomain
from captum_freqrex._core.records import CORE_START, SetCertificate
from captum_freqrex._core.records import ProbeResult
from captum_freqrex._core.spectral.space import FeatureSpace
from captum_freqrex._core.records import QueryStats
from captum_freqrex._core.records import AlternativesReport
from captum_freqrex._explanation.informative import set_flags
from captum_freqrex._explanation.manipulation import Manipulation
from captum_freqrex._explanation.text import describe
from captum_freqrex._explanation.records import (
    MANIPULATION,
    MAX_LISTED,
    QUIET_SUFFICIENT,
    SET_NAMES,
    csv_lines,
    domain_record,
    set_record,
    summary_record,
)


@dataclass
class CausalSet:
    r"""One certified set of frequency features.

    Attributes:
        name (str): ``"sufficient"``, ``"sufficient_necessary"`` or ``"complete"``.
        mask (Tensor): ``(n_features,)`` bool, the features in the set.
        n_bins (int): Number of frequency bins (grid cells) the features cover.
        certificate (SetCertificate): What the model said when re-queried on the set.
        energy_share (float): The set's share of the clip's spectral energy against the baseline
                    (``|X - Xb|^2`` summed over its bins, over the same sum for all bins), in [0, 1].
        level_db (float): The loudest bin of the set relative to the clip's loudest bin, in dB
                    (0 when the set holds the spectral peak; -40 means a bin 40 dB below it). A
                    set far below 0 dB is valid but may be inaudible next to the clip.

    A set that is most of the spectrum or far below the clip's level is certified but says little:
    :attr:`flags` says so (thresholds in :mod:`captum_freqrex._explanation.informative`).
    """

    name: str
    mask: Tensor
    n_bins: int
    certificate: SetCertificate
    energy_share: float = float("nan")
    level_db: float = float("nan")

    @property
    def size(self) -> int:
        """Number of features in the set."""
        return self.certificate.size

    @property
    def feature_share(self) -> float:
        """The set's share of the features, in [0, 1]."""
        return self.size / max(1, int(self.mask.numel()))

    @property
    def flags(self) -> List[Dict[str, str]]:
        """Why the set may not be worth reading and what to do: ``{"flag", "reason", "next_step"}``
        per flag (``"most_of_spectrum"``: over half the features; ``"below_clip_level"``: its
        loudest bin more than 20 dB below the clip's); empty for an informative set."""
        # A complete set that is its core unchanged (a sufficient-and-necessary set of every
        # feature) answers to what that set answers to: a lower tolerance cannot shrink it.
        shrink = self.certificate.shrink
        core = self.name == "complete" and shrink is not None and shrink.start == CORE_START
        return set_flags(self.size, self.feature_share, self.level_db, "sufficient_necessary" if core else self.name)

    @property
    def certified(self) -> bool:
        """Whether the set's claim held when the model was queried on it again."""
        return self.certificate.certified

    @property
    def kept_confidence(self) -> float:
        """Confidence in the target with only this set kept."""
        return self.certificate.kept.confidence

    @property
    def flip_class(self) -> Optional[int]:
        """Class the model decides when the set is removed from the original (None if not queried)."""
        removed = self.certificate.removed
        return None if removed is None else removed.decided

    def as_dict(self) -> Dict[str, Any]:
        """The set's certificate and loudness as a JSON-safe dict (see :meth:`Explanation.summary`)."""
        return set_record(self)

    def __repr__(self) -> str:
        flip = f", removal flips to class {self.flip_class}" if self.flip_class is not None else ""
        return f"CausalSet({self.name!r}, {self.size} features, {self.n_bins} bins, {self.status}{flip})"

    @property
    def status(self) -> str:
        """``"certified"`` or ``"NOT certified"``, then the set's flags, if any (``"certified, flagged:
        below_clip_level"``): certification says the claim held, a flag that the set may not be
        worth reading (:attr:`flags`)."""
        status = "certified" if self.certified else "NOT certified"
        flags = [f["flag"] for f in self.flags]
        return f"{status}, flagged: {', '.join(flags)}" if flags else status


@dataclass
class FeatureLayout:
    r"""Where each feature's bins sit: what summaries, CSVs and plots need besides the values.

    Known from the feature space of a fresh explanation, or read back by :meth:`Explanation.load`;
    :attr:`Explanation.layout` gives it. Plain data: it holds no spectra.

    Attributes:
        ids (tuple of Tensor): Per input, the feature id of every bin, shaped like the feature grid
                    (``(freq,)``, ``(channels, freq)`` or ``(freq, frames)``), on the CPU.
        example_shapes (tuple of tuple): Per input, one example's waveform shape: ``(time,)`` or
                    ``(channels, time)``.
        domain (SpectralDomain, optional): The transform; None for a loaded explanation whose
                    domain could not be rebuilt.
        domain_record (dict): ``name``, ``repr``, ``grid_ndim`` (and the STFT's parameters), as in
                    :meth:`Explanation.summary`.
    """

    ids: Tuple[Tensor, ...]
    example_shapes: Tuple[Tuple[int, ...], ...]
    domain: Optional[SpectralDomain]
    domain_record: Dict[str, Any]

    @classmethod
    def of(cls, space: FeatureSpace) -> "FeatureLayout":
        shapes = tuple(tuple(int(n) for n in s) for s in space.example_shapes)
        ids = tuple(i.detach().cpu() for i in space.ids())
        return cls(ids, shapes, space.domain, domain_record(space.domain, shapes[0][-1]))

    def axes(self, index: int) -> Tuple[Optional[int], int, Optional[int]]:
        """Axis of the channels (or None), of frequency, and of frames (or None) of an input's grid."""
        grid_ndim = int(self.domain_record.get("grid_ndim", 1))
        channel = 0 if self.ids[index].dim() > grid_ndim else None
        freq = 0 if channel is None else 1
        return channel, freq, (freq + 1 if grid_ndim == 2 else None)

    def bin_hz(self, index: int, sample_rate: Optional[float]) -> Optional[Tensor]:
        """Centre frequency in Hz of each frequency row of an input's grid (None without a rate)."""
        if sample_rate is None:
            return None
        length = self.example_shapes[index][-1]
        if self.domain is not None:
            return self.domain.bin_frequencies(length, float(sample_rate)).double().cpu()
        if self.domain_record.get("name") == "rfft":
            return torch.fft.rfftfreq(length, d=1.0 / float(sample_rate)).double()
        return None

    def frame_seconds(self, index: int, sample_rate: Optional[float]) -> Optional[Tensor]:
        """Centre time in seconds of each frame of an STFT grid (None for 1-D grids or without a rate)."""
        if sample_rate is None or self.axes(index)[2] is None:
            return None
        frame_times = getattr(self.domain, "frame_times", None)
        if frame_times is None:
            return None
        return frame_times(self.example_shapes[index][-1], float(sample_rate)).double().cpu()


@dataclass
class Explanation:
    r"""The causal explanation of one example.

    Attributes:
        responsibility (Tensor or tuple of Tensor): Responsibility per frequency bin, shaped like the
                    feature grid: ``(freq,)`` for rfft features shared across channels, ``(channels,
                    freq)`` per channel, ``(freq, frames)`` for the STFT domain; a tuple for tuple inputs.
        feature_responsibility (Tensor): ``(n_features,)`` responsibility per feature (sums to 1 when
                    every search found a cause).
        ranking (Tensor): ``(n_features,)`` feature ids, most responsible first; ties (a piece the
                    search did not split) put the louder feature first.
        target (int): The explained decision (class index).
        original (ProbeResult): The model on the unmasked input.
        sufficient (CausalSet, optional): Smallest found prefix of the ranking that, kept alone,
                    keeps the decision, shrunk with ``shrink=True`` (the default), or the search's
                    own one-feature set where it saw one pass. None when no prefix does.
        sufficient_necessary (CausalSet, optional): A sufficient set whose removal changes the
                    decision; its ``flip_class`` is the class the removal flips to.
        complete (CausalSet, optional): The sufficient-and-necessary set plus the features needed to
                    reach the original confidence within the tolerance.
        stats (QueryStats): Queries, forward calls, model time and total time of this example.
        responsibility_queries (int): Queries spent on responsibility.
        extraction_queries (int): Queries spent on extracting and certifying the sets.
        stopped_by (str): Why the responsibility search stopped: ``"minimal"`` (a one-feature set
                    passed), ``"small"`` (a set of at most four features passed), ``"converged"`` (a
                    search found no smaller set), ``"searches"`` (all ``n_samples`` ran),
                    ``"max_queries"``, or ``"empty set passes"`` (the baseline alone keeps the
                    decision: nothing to search); ``"attributions"`` when the ranking came from
                    given attributions.
        baseline (ProbeResult, optional): The model on the baseline alone (every feature removed).
        warnings (list of str): Why (part of) this explanation cannot be taken at face value, in
                    plain words: the target is not the model's decision, the baseline alone already
                    gives the decision, a set did not hold on re-query, ... Empty when nothing is
                    wrong. Also issued as Python warnings by :meth:`FreqReX.explain`.
        settings (dict): The options of the :meth:`FreqReX.explain` call that made it (``seed``,
                    ``n_samples``, ``max_queries``, ``domain``, ``decision``, ...), JSON-safe (see
                    :func:`settings_record`); ``seed`` is the seed actually used (drawn from
                    ``generator`` when one was given), so passing it again reproduces the result.
        class_confidences (Tensor, optional): ``(n_classes,)`` the decision's confidence in every
                    class on the unmasked input (the softmax of logits, for example). None when the
                    decision cannot say.
        sample_rate (float, optional): Sample rate of the explained audio in Hz, when known: the
                    default of every method that takes a ``sample_rate``. :meth:`FreqReX.explain`
                    takes it from the model's ``sample_rate`` attribute (the zoo's models have one);
                    otherwise set it (``expl.sample_rate = 16000``) or pass it to the methods.
        model_stable (bool, optional): Whether the model gave the same output on the unmasked
                    input when it was queried again at certification (False: its output changed
                    between calls, so nothing is certified; see :attr:`warnings`). None when not
                    checked (an explanation saved before this field existed).
        stored_layout (FeatureLayout, optional): The feature layout of an explanation loaded without
                    its inputs; None while it is derived from the explanation's own feature space
                    (read :attr:`layout`).
        alternatives (list of CausalSet): With ``explain(..., n_explanations=k)``: up to ``k - 1``
                    further certified sufficient sets, pairwise disjoint and disjoint from
                    :attr:`sufficient` (which is not repeated here); empty otherwise. Rebuild one
                    as a waveform with ``waveform("alternative_1")`` (``"alternative_2"``, ...).
        alternatives_report (AlternativesReport, optional): How they were searched: the number
                    requested, the queries each spent, and why fewer were found (``stopped``).
                    None when ``n_explanations=1``.
        quiet_sufficient (CausalSet, optional): A certified sufficient set far below the clip's
                    level (its loudest bin more than 20 dB below the clip's loudest), which
                    :attr:`sufficient` replaced: where the search's sufficient set is that quiet and
                    the sufficient-and-necessary set is certified and at the clip's level, that
                    set, shrunk while it keeps the decision alone (its loudest member kept; at
                    most ``max_shrink_queries`` more), is :attr:`sufficient` (what a listener
                    hears decide) unless it is most of the spectrum, and the quiet one is kept
                    here: the model keeps its decision on that near-silent input as well, a fact
                    about the model worth auditing. None otherwise. Rebuild it with
                    ``waveform("quiet_sufficient")``.
        class_names (tuple of str, optional): The names of the model's classes, by index, when
                    known: :meth:`FreqReX.explain` takes them from the model's ``class_names``
                    attribute where it names every output (the zoo's models have one); the default
                    of :meth:`describe` and :meth:`to_html`. None: classes by index (set it, or pass
                    ``class_names=`` to those methods).
        manipulation (Manipulation, optional): With ``explain(..., mode="necessary")``: the fewest
                    features the search found whose removal changes the decision, re-queried, and
                    how loud that change is (its SNR in dB). Rebuild the manipulated clip with
                    ``waveform("manipulation", removed=True)``. None in ``mode="sufficient"`` or
                    where no removal that changes the decision was found.
    """

    responsibility: Union[Tensor, Tuple[Tensor, ...]]
    feature_responsibility: Tensor
    ranking: Tensor
    target: int
    original: ProbeResult
    sufficient: Optional[CausalSet]
    sufficient_necessary: Optional[CausalSet]
    complete: Optional[CausalSet]
    stats: QueryStats
    responsibility_queries: int
    extraction_queries: int
    stopped_by: str
    _space: Optional[FeatureSpace] = field(repr=False)
    _example: int = field(repr=False)
    _is_tuple: bool = field(default=False, repr=False)
    baseline: Optional[ProbeResult] = None
    warnings: List[str] = field(default_factory=list)
    settings: Dict[str, Any] = field(default_factory=dict)
    class_confidences: Optional[Tensor] = None
    sample_rate: Optional[float] = None
    stored_layout: Optional[FeatureLayout] = field(default=None, repr=False)
    model_stable: Optional[bool] = None
    alternatives: List[CausalSet] = field(default_factory=list)
    alternatives_report: Optional[AlternativesReport] = None
    quiet_sufficient: Optional[CausalSet] = None
    class_names: Optional[Tuple[str, ...]] = None
    manipulation: Optional[Manipulation] = None

    @property
    def target_is_decision(self) -> bool:
        """Whether the unmasked input keeps the explained target (False: the target is not decided)."""
        return self.original.passes

    @property
    def baseline_decides(self) -> bool:
        """Whether the baseline alone already gives the target decision (the empty set suffices)."""
        return self.baseline is not None and self.baseline.passes

    @property
    def sets(self) -> Dict[str, Optional[CausalSet]]:
        """The three sets by name."""
        return {name: getattr(self, name) for name in SET_NAMES}

    @property
    def named_sets(self) -> Dict[str, CausalSet]:
        """Every set found, by the name :meth:`waveform` takes: the three sets, then ``"alternative_1"``,
        ..., then ``"quiet_sufficient"`` (when there is one)."""
        found = {name: chosen for name, chosen in self.sets.items() if chosen is not None}
        found |= {f"alternative_{number}": chosen for number, chosen in enumerate(self.alternatives, start=1)}
        return found | ({} if self.quiet_sufficient is None else {QUIET_SUFFICIENT: self.quiet_sufficient})

    @property
    def sufficient_sets(self) -> List[CausalSet]:
        """Every pairwise-disjoint sufficient set: :attr:`sufficient` (when found), then :attr:`alternatives`."""
        return ([self.sufficient] if self.sufficient is not None else []) + list(self.alternatives)

    @property
    def certified(self) -> bool:
        """True when every returned set held on re-query (missing sets are reported, not certified)."""
        return all(s is not None and s.certified for s in self.sets.values())

    @property
    def flip_class(self) -> Optional[int]:
        """The class the decision flips to when the sufficient-and-necessary set is removed."""
        return None if self.sufficient_necessary is None else self.sufficient_necessary.flip_class

    @property
    def has_waveforms(self) -> bool:
        """Whether the sets can be rebuilt as waveforms (False for a file loaded without its inputs)."""
        return self._space is not None

    @property
    def layout(self) -> FeatureLayout:
        """Where each feature's bins sit: feature ids per bin, waveform shapes, the domain (read-only)."""
        if self.stored_layout is None:
            assert self._space is not None
            self.stored_layout = FeatureLayout.of(self._space)
        return self.stored_layout

    @property
    def is_tuple(self) -> bool:
        """Whether the explained input was a tuple of waveform tensors (waveforms come back as tuples)."""
        return self._is_tuple

    def baseline_waveforms(self) -> Optional[Tuple[Tensor, ...]]:
        """The baseline's waveforms of the explained example, one per input tensor (None for a file
        loaded without its inputs)."""
        return None if self._space is None else self._space.baseline_waveforms(self._example)

    def _set(self, which: str) -> Union[CausalSet, Manipulation]:
        if which.startswith("alternative_") and which[len("alternative_"):].isdigit():
            number = int(which[len("alternative_"):])
            if not 1 <= number <= len(self.alternatives):
                raise ValueError(
                    f"this explanation has {len(self.alternatives)} alternative sets, so no {which!r} "
                    "(see Explanation.alternatives and explain(..., n_explanations=k))"
                )
            return self.alternatives[number - 1]
        if which == QUIET_SUFFICIENT:
            if self.quiet_sufficient is None:
                raise ValueError(
                    "this explanation has no quiet_sufficient set: its sufficient set was not replaced "
                    "(see Explanation.quiet_sufficient)"
                )
            return self.quiet_sufficient
        if which == MANIPULATION:
            if self.manipulation is None:
                raise ValueError(
                    "this explanation has no manipulation: it comes from explain(..., mode=\"necessary\") where "
                    "the search found a removal that changes the decision (see Explanation.manipulation)"
                )
            return self.manipulation
        if which not in SET_NAMES:
            raise ValueError(
                f"which must be one of {SET_NAMES}, 'alternative_<n>', {QUIET_SUFFICIENT!r} or {MANIPULATION!r}, got {which!r}"
            )
        chosen = getattr(self, which)
        if chosen is None:
            raise ValueError(f"this explanation has no {which} set (see Explanation.{which})")
        return chosen

    def _need_space(self) -> FeatureSpace:
        if self._space is None:
            raise ValueError(
                "this explanation was loaded without its inputs, so it cannot rebuild waveforms: "
                "pass the explained waveform to Explanation.load(path, inputs=...) (and baselines=... "
                "for a non-silent baseline), or save with include_inputs=True"
            )
        return self._space

    def _rate(self, sample_rate: Optional[float]) -> Optional[float]:
        return self.sample_rate if sample_rate is None else sample_rate

    def waveform(self, which: str = "sufficient", removed: bool = False) -> Union[Tensor, Tuple[Tensor, ...]]:
        r"""Reconstruct a set as a waveform.

        Args:
            which (str, optional): ``"sufficient"``, ``"sufficient_necessary"``, ``"complete"``,
                        ``"alternative_1"``, ``"alternative_2"``, ... for :attr:`alternatives`, or
                        ``"quiet_sufficient"`` for :attr:`quiet_sufficient`, ``"manipulation"`` for
                        :attr:`manipulation`. Default: ``"sufficient"``
            removed (bool, optional): False gives the set alone (the rest at the baseline); True gives
                        the original with the set removed (with ``"manipulation"``: the manipulated
                        clip the model decides otherwise). Default: False

        Returns:
            Tensor or tuple of Tensor: Shaped like one example of the input: ``(time,)`` or
            ``(channels, time)``.

        Raises:
            ValueError: For an unknown or missing set, or an explanation loaded without its inputs.
        """
        chosen = self._set(which)
        space = self._need_space()
        mask = chosen.mask.to(space.device).float()
        keep = (1.0 - mask) if removed else mask
        waves = tuple(w[0] for w in space.mutants(self._example, keep.view(1, -1)))
        return waves if self._is_tuple else waves[0]

    def original_waveform(self) -> Union[Tensor, Tuple[Tensor, ...]]:
        """The explained input, resynthesised from its spectrum; shaped like one example."""
        space = self._need_space()
        keep = torch.ones(1, space.n_features, device=space.device)
        waves = tuple(w[0] for w in space.mutants(self._example, keep))
        return waves if self._is_tuple else waves[0]

    # ------------------------------------------------------------------ readable records

    def feature_ranks(self) -> Tensor:
        """``(n_features,)`` long: each feature's place in the ranking, 1 for the most responsible."""
        ranking = self.ranking.detach().cpu().long()
        ranks = torch.empty_like(ranking)
        ranks[ranking] = torch.arange(1, ranking.numel() + 1)
        return ranks

    def summary(self, sample_rate: Optional[float] = None, max_listed: Optional[int] = MAX_LISTED) -> Dict[str, Any]:
        r"""A JSON-serialisable summary: classes, confidences, every set with its frequencies in Hz,
        the settings, versions, queries and time.

        Fields (``summary.json`` of the ``freqrex`` command adds the model, clip, files and
        baseline to these):

        * ``schema`` (``"captum_freqrex.summary"``) and ``schema_version`` (int): the layout of
          this dict; the version grows when a field changes meaning or goes away.
        * ``versions``: ``captum_freqrex``, ``torch`` and ``captum`` versions that made it.
        * ``target``: the explained class; ``original_class`` and ``original_confidence``: the
          model's decision on the unmasked input and its confidence in it; ``target_confidence``:
          its confidence in the target; ``target_is_decision``; ``baseline_decides`` (the
          baseline alone already gives the target); ``class_confidences``: the confidence in every
          class on the unmasked input (a list, or None when the decision cannot say).
        * ``warnings``: :attr:`warnings`.
        * ``sample_rate``: the rate the Hz fields use (None: unknown, and every ``*_hz`` is None).
        * ``domain``: ``name`` (``"rfft"``, ``"stft"``), ``repr``, ``grid_ndim`` (1 for rfft, 2
          for STFT) and, for STFT, ``n_fft``, ``hop_length`` and ``center``.
        * ``n_features``, ``flip_class`` (the class removing the sufficient-and-necessary set
          flips to), ``certified`` (every set found and certified), ``flags`` (every set's
          flags, each a dict ``set``, ``flag``, ``reason``, ``next_step``; empty when every set is
          informative: see the sets' ``flags``).
        * ``sets``: per name, None when no such set was found, else a dict with ``features``
          (count), ``bins`` (count of grid bins), ``certified``, ``minimal_size_resolved``,
          ``kept_class``, ``kept_confidence`` (the model on the set alone), ``removed_class`` and
          ``removed_confidence`` (on the original without it; sufficient-and-necessary only),
          ``feature_share`` (its share of the features), ``energy_share``, ``level_db``,
          ``flags`` (:attr:`CausalSet.flags`: ``"most_of_spectrum"`` when it holds over half the
          features, ``"below_clip_level"`` when its loudest bin is over 20 dB below the clip's,
          each with its ``reason`` and ``next_step``), ``note``, ``shrink``  (for a sufficient set shrunk by
          ``explain(shrink=True)``: the sizes before and after, the queries and ``one_minimal``;
          None otherwise), and where its frequencies are:
          ``n_frequencies`` (distinct frequency rows the set touches), ``frequency_bins`` (those
          rows' indices, ascending), ``frequencies_hz`` (the same in Hz), ``frequency_span_hz``
          (lowest and highest), ``frequencies_truncated`` (True when only the ``max_listed``
          most responsible rows are listed), ``bands`` and ``bands_hz`` (features that span
          several rows, as ``[lowest, highest]`` row and bin centre in Hz; None when every
          feature is one row), ``cells`` and ``cells_hz_s`` (STFT only: ``[row, frame]`` and
          ``[Hz, seconds]`` of the set's cells, most responsible first; None otherwise). For tuple
          inputs these location fields sit in a list ``inputs``, one dict per input.
        * ``alternatives``: :attr:`alternatives` (``explain(..., n_explanations=k)``), each a dict
          like a set's above; an empty list otherwise. ``alternatives_report``: ``requested``,
          ``queries`` (per alternative), ``stopped`` (why fewer were found; empty when all
          were) and ``stop_queries``; None with ``n_explanations=1``.
        * ``quiet_sufficient``: :attr:`quiet_sufficient` as a dict like a set's above (it is not
          among ``sets`` nor their ``flags``: the sufficient set replaced it); None when there is none.
        * ``manipulation``: :attr:`manipulation` (``mode="necessary"``): ``features``, ``bins``,
          ``certified``, ``removed_class`` and ``removed_confidence`` (the model on the original
          without it), ``snr_db``, ``feature_share``, ``energy_share``, ``level_db``, ``flags``
          (:attr:`Manipulation.flags`), ``note`` and
          where its frequencies are, like a set's; None when there is none.
        * ``seed``: the seed of the search; ``settings``: :attr:`settings`.
        * ``responsibility_queries``, ``extraction_queries``, ``stopped_by``, and the cost:
          ``queries``, ``forward_calls``, ``model_seconds``, ``overhead_seconds``,
          ``total_seconds``.

        Args:
            sample_rate (float, optional): Sample rate in Hz for the ``*_hz`` fields.
                        Default: :attr:`sample_rate` (None: bins only)
            max_listed (int, optional): Most frequencies, bands and cells listed per set (the
                        most responsible ones); None lists all. :meth:`to_csv` writes every bin.
                        Default: 1000

        Returns:
            dict: The summary, ready for ``json.dump``.
        """
        return summary_record(self, self._rate(sample_rate), max_listed, self._is_tuple)

    def describe(self, sample_rate: Optional[float] = None, class_names: Optional[Sequence[str]] = None) -> str:
        r"""The explanation in a few lines, as the ``freqrex`` command prints it: the decision; each
        set's size, share of the features and of the energy, loudest bin, certificate, where its
        frequencies are and its flags; the class removing the sufficient-and-necessary set flips
        to; the warnings, the hints (the next step for a flagged set) and the cost.
        ``print(explanation)`` prints the same.

        Args:
            sample_rate (float, optional): Sample rate in Hz, for the frequencies in Hz.
                        Default: :attr:`sample_rate` (None: rfft bins)
            class_names (sequence of str, optional): Names of the model's classes, by index.
                        Default: :attr:`class_names` (None: classes by index)

        Returns:
            str: The lines, joined by newlines.
        """
        return describe(self.summary(self._rate(sample_rate)), self.class_names if class_names is None else class_names)

    def __str__(self) -> str:
        return self.describe()

    def to_csv(self, path: str, sample_rate: Optional[float] = None, *, overwrite: bool = True) -> str:
        r"""Write one CSV row per frequency bin: where it is, its responsibility, rank and sets.

        Columns: ``input`` (tuple inputs only), ``channel`` (per-channel features only), ``bin``
        (frequency row), ``hz`` (its centre frequency; empty without a sample rate), ``frame`` and
        ``time_s`` (STFT only), ``feature`` (id), ``responsibility`` (of the feature), ``rank`` (of
        the feature, 1 = most responsible), then ``sufficient``, ``sufficient_necessary`` and
        ``complete``: 1 when the bin is in the set, 0 when not, empty when no such set was found;
        then, only where the explanation holds them, one such column per further set of
        :attr:`named_sets`: ``alternative_1``, ... (``n_explanations``) and ``quiet_sufficient``.
        Rows follow the grid (frequency ascending).

        Args:
            path (str): The file to write.
            sample_rate (float, optional): Sample rate in Hz for ``hz`` and ``time_s``.
                        Default: :attr:`sample_rate`
            overwrite (bool, optional): Replace an existing file; False raises
                        ``FileExistsError`` instead. Default: True

        Returns:
            str: The path.
        """
        lines = csv_lines(self, self._rate(sample_rate), self._is_tuple)
        with open(path, "w" if overwrite else "x", encoding="utf-8", newline="") as handle:
            handle.writelines(line + "\n" for line in lines)
        return path

    # ------------------------------------------------------------------ saving and loading

    def save(self, path: str, include_inputs: bool = False) -> str:
        r"""Write the explanation to one file (``torch.save`` of plain tensors, numbers and strings).

        The file holds a schema name and version (``"captum_freqrex.explanation"``, 1), the
        package versions, the responsibility, ranking, sets with their certificates, the model's
        verdicts, the warnings, settings, cost, sample rate, and where each feature's bins sit.
        :meth:`load` reads it back with ``weights_only=True`` (no pickled code).

        Args:
            path (str): The file to write (e.g. ``explanation.pt``).
            include_inputs (bool, optional): Also store the explained waveform and its baseline,
                        so that the loaded explanation rebuilds the sets as waveforms. Default: False

        Returns:
            str: The path.
        """
        from captum_freqrex._explanation.file import save_explanation

        return save_explanation(self, path, include_inputs)

    @classmethod
    def load(
        cls,
        path: str,
        inputs: Union[None, Tensor, Tuple[Tensor, ...]] = None,
        baselines: Union[None, Tensor, Tuple[Tensor, ...]] = None,
        *,
        domain: Optional[SpectralDomain] = None,
    ) -> "Explanation":
        r"""Read an explanation written by :meth:`save`.

        What comes back: everything but the spectra. :meth:`summary`, :meth:`to_csv`, the masks,
        ``responsibility``, ``ranking``, the certificates, settings and warnings work as on the
        original. :meth:`waveform`, :meth:`original_waveform`, :meth:`save_wavs`, the plots and
        :meth:`to_html` need the explained waveform: it is taken from the file when it was saved
        with ``include_inputs=True``, or from ``inputs`` (and ``baselines``); without either they
        raise a ``ValueError`` that says so (see :attr:`has_waveforms`).

        Args:
            path (str): A file written by :meth:`save`.
            inputs (Tensor or tuple of Tensor, optional): The explained waveform, shaped like one
                        example (``(time,)`` or ``(channels, time)``, or with a batch dimension of
                        one). Default: the waveform stored in the file, if any.
            baselines (Tensor or tuple of Tensor, optional): Its baseline waveform, needed with
                        ``inputs`` when the explanation's baseline was not silence. Default: the
                        stored baseline, or silence.
            domain (SpectralDomain, optional): The domain of the explanation, needed to rebuild
                        waveforms (and Hz) for a domain other than rfft and STFT. Default: rebuilt
                        from the file.

        Returns:
            Explanation: The explanation (its ``_example`` is 0).

        Raises:
            ValueError: When the file is not a saved explanation, was written by a newer schema,
                        is damaged (every field is checked against the others: the message
                        starts with ``"this saved explanation is damaged: <field>"``), or
                        ``inputs`` do not match the explained shapes.
        """
        from captum_freqrex._explanation.file import load_explanation

        return load_explanation(path, inputs, baselines, domain)

    # ------------------------------------------------------------------ files and figures

    def save_wavs(self, directory: str, sample_rate: Optional[int] = None, listening_copies: bool = True) -> Dict[str, str]:
        r"""Write the original and every set (kept alone, and removed) as WAV files.

        Needs ``soundfile`` (the ``audio`` extra). See :func:`captum_freqrex.audio.save_explanation_wavs`.

        Args:
            directory (str): Output folder, created if missing.
            sample_rate (int, optional): Sample rate in Hz. Default: :attr:`sample_rate`
            listening_copies (bool, optional): Also write a peak-normalised ``*.listen.wav`` beside
                        each set's true-level WAV. Default: True

        Returns:
            dict: File path per signal name.
        """
        from captum_freqrex.audio import save_explanation_wavs

        return save_explanation_wavs(self, directory, self._need_rate(sample_rate), listening_copies=listening_copies)

    def _need_rate(self, sample_rate: Optional[float]) -> float:
        rate = self._rate(sample_rate)
        if rate is None:
            raise ValueError("a sample rate is needed: pass sample_rate=... or set Explanation.sample_rate")
        return int(rate) if float(rate).is_integer() else rate

    def plot(self, sample_rate: Optional[float] = None, **kwargs: Any) -> Any:
        r"""Plot the responsibility spectrum with the sets drawn on it (needs ``matplotlib``, the ``audio`` extra).

        Args:
            sample_rate (float, optional): Sample rate in Hz for a frequency axis; bins otherwise.
                        Default: :attr:`sample_rate`
            **kwargs: Passed to :func:`captum_freqrex.plotting.plot_responsibility`
                        (``class_names`` defaults to :attr:`class_names`).

        Returns:
            matplotlib.figure.Figure: The figure.
        """
        from captum_freqrex.plotting import plot_responsibility

        kwargs.setdefault("class_names", self.class_names)
        return plot_responsibility(self, sample_rate=self._rate(sample_rate), **kwargs)

    def plot_spectrograms(self, sample_rate: Optional[float] = None, **kwargs: Any) -> Any:
        r"""Spectrograms of the clip (with the sets drawn over it) and of each set (needs ``matplotlib``).

        Args:
            sample_rate (float, optional): Sample rate in Hz. Default: :attr:`sample_rate`
            **kwargs: Passed to :func:`captum_freqrex.plotting.plot_explanation_spectrograms`
                        (``class_names`` defaults to :attr:`class_names`).

        Returns:
            matplotlib.figure.Figure: The figure.
        """
        from captum_freqrex.plotting import plot_explanation_spectrograms

        kwargs.setdefault("class_names", self.class_names)
        return plot_explanation_spectrograms(self, self._need_rate(sample_rate), **kwargs)

    def to_html(self, path: str, sample_rate: Optional[float] = None, **kwargs: Any) -> str:
        r"""Write a self-contained HTML report (audio players, figures, sets, settings, warnings).

        Needs ``matplotlib`` (the ``audio`` extra). See :func:`captum_freqrex.report.write_html`.

        Args:
            path (str): The ``.html`` file to write.
            sample_rate (float, optional): Sample rate in Hz. Default: :attr:`sample_rate`
            **kwargs: Passed to :func:`captum_freqrex.report.write_html` (``class_names``, default
                        :attr:`class_names`; ``title``, ``details``).

        Returns:
            str: The path.
        """
        from captum_freqrex.report import write_html

        kwargs.setdefault("class_names", self.class_names)
        return write_html(self, path, self._need_rate(sample_rate), **kwargs)

    def __repr__(self) -> str:
        parts = [f"target={self.target}", f"confidence={self.original.confidence:.3f}"]
        for name, chosen in self.sets.items():
            if chosen is None:
                parts.append(f"{name}=None")
            else:
                parts.append(f"{name}={chosen.size} features ({chosen.status})")
        if self.alternatives:
            parts.append(f"alternatives={[s.size for s in self.alternatives]} features")
        if self.quiet_sufficient is not None:
            parts.append(f"quiet_sufficient={self.quiet_sufficient.size} features")
        if self.manipulation is not None:
            found = self.manipulation
            parts.append(f"manipulation={found.size} feature{'s' * (found.size != 1)} (SNR {found.snr_db:.1f} dB)")
        parts += [f"flip_class={self.flip_class}", f"n_features={int(self.feature_responsibility.numel())}"]
        parts += [f"queries={self.stats.queries}", f"warnings={len(self.warnings)}"]
        if self.sample_rate is not None:
            parts.append(f"sample_rate={self.sample_rate:g}")
        return f"Explanation({', '.join(parts)})"

