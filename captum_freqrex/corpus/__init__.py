"""Explaining whole data sets: resumable runs into one SQLite store, and class-level aggregates.

* :func:`explain_dataset` — explain every clip of a folder, CSV, built data set or DataLoader with
  FreqReX, in this process or on Ray; each clip is written to the store in one transaction, and a
  second call resumes where the first stopped.
* :class:`ResultStore` — the SQLite file: one run (settings, model, versions), per clip, per set,
  per bin of each set, per band of a fixed third-octave grid, flip results at k = 1 and 5, and
  (with ``transfer_to``) the decisions of other models on each clip's sufficient signal.
* :func:`aggregate` / :func:`write_aggregates` — per class: how many clips were explained and
  trusted (and why the others are not), mean responsibility per band over the clips whose search
  found a cause and the bands it relies on (flagging low-frequency cues), flip rates and median
  SNR, and the transfer targets' acceptance matrix.

Like :mod:`captum_freqrex.metrics` and :mod:`captum_freqrex.compare`, this sits on top of the core
(it reads audio and writes files) and is imported from here, not from ``captum_freqrex``::

    from captum_freqrex.corpus import explain_dataset, aggregate
"""

from captum_freqrex.corpus._aggregate import (
    LEFT_OUT_REASONS,
    LOW_FREQUENCY_HZ,
    UNTRUSTED_REASONS,
    Aggregates,
    ClassAggregate,
    aggregate,
    write_aggregates,
)
from captum_freqrex.corpus._grid import BandGrid, band_grid
from captum_freqrex.corpus._run import DatasetRun, ModelFailedError, describe_model, explain_dataset
from captum_freqrex.corpus._sources import AUDIO_EXTENSIONS, Clip, ClipSource, SourceError, clip_source, fingerprint
from captum_freqrex.corpus._store import (
    SCHEMA,
    SCHEMA_VERSION,
    DamagedStoreError,
    DatasetChangedError,
    ResultStore,
    StoreError,
    StoreMismatchError,
)

__all__ = [
    "explain_dataset",
    "DatasetRun",
    "ModelFailedError",
    "aggregate",
    "write_aggregates",
    "Aggregates",
    "ClassAggregate",
    "ResultStore",
    "StoreError",
    "StoreMismatchError",
    "DatasetChangedError",
    "DamagedStoreError",
    "SCHEMA",
    "SCHEMA_VERSION",
    "Clip",
    "ClipSource",
    "clip_source",
    "SourceError",
    "fingerprint",
    "AUDIO_EXTENSIONS",
    "BandGrid",
    "band_grid",
    "describe_model",
    "LOW_FREQUENCY_HZ",
    "UNTRUSTED_REASONS",
    "LEFT_OUT_REASONS",
]
