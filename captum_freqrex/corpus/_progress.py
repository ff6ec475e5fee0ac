"""The progress line of a data-set run (a tqdm bar): clips done, queries, elapsed time and ETA, on stderr.

A :class:`~captum_freqrex._utils.progress.QueryProgress` over clips instead of examples. With the
local backend every model call of FreqReX updates it (so the ETA moves inside a clip, from the
share of its query budget spent); with Ray it moves as clips come back from the workers::

    explain-dataset: clip 12/40 (8 already stored), 11,904 queries, 9.8 s elapsed, ETA 22.9 s
"""

from __future__ import annotations

import time
from contextvars import Token
from typing import Optional, TextIO

from captum_freqrex._utils.progress import ACTIVE_PROGRESS, QueryProgress, format_seconds

__all__ = ["DatasetProgress"]


class DatasetProgress(QueryProgress):
    r"""Progress over the clips of one run.

    Args:
        total (int, optional): Clips to explain in this run (None when the source cannot tell).
        skipped (int): Clips already stored (shown, not counted in ``total``).
        budget (int, optional): FreqReX's query budget per clip.
        stream (TextIO, optional): Where to write. Default: ``sys.stderr``
    """

    def __init__(self, total: Optional[int], skipped: int, budget: Optional[int], stream: Optional[TextIO] = None):
        super().__init__("explain-dataset", total or 0, budget, stream)
        self.known = total is not None
        self.skipped = skipped
        self.base = 0  # queries of the clips finished, before the current batch
        self.batch = 1  # clips in the current batch
        self.token: Optional[Token] = None

    def __enter__(self) -> "DatasetProgress":
        self.token = ACTIVE_PROGRESS.set(self)  # FreqReX's model calls report to the active progress line
        self.show()  # opens the bar: its first line
        return self

    def __exit__(self, kind: object, *rest: object) -> None:
        if self.token is not None:
            try:
                ACTIVE_PROGRESS.reset(self.token)
            except ValueError:
                ACTIVE_PROGRESS.set(None)
        self.close(kind is None)

    def start_batch(self, clips: int) -> None:
        """A batch of ``clips`` clips starts (local backend: FreqReX reports its queries from 0)."""
        self.batch = clips
        self.example_queries = self.queries

    def update(self, queries: int) -> None:
        super().update(self.base + queries)

    def finished(self, done: int, queries: int) -> None:
        """``done`` clips of this run are finished, ``queries`` queries spent in all."""
        self.base = self.queries = queries
        self.begin(done)

    def begin(self, index: int) -> None:
        self.done = index
        self.example_start = time.perf_counter()
        self.example_queries = self.queries
        self.show()

    def position(self, now: float) -> float:
        """Clips done, plus the batch in flight's share of its query budget."""
        in_flight = 0.0
        if self.budget:
            spent = (self.queries - self.example_queries) / (self.budget * self.batch)
            in_flight = min(max(spent, 0.0), 1.0) * self.batch
        return self.done + in_flight

    def eta(self, now: float) -> Optional[float]:
        if not self.known or self.total == 0:
            return None
        fraction = min(self.position(now) / self.total, 1.0)
        if fraction <= 0:
            return None
        return max((now - self.start) * (1 - fraction) / fraction, 0.0)

    def line(self, now: float) -> str:
        where = f"clip {min(self.done + 1, self.total)}/{self.total}" if self.known else f"clip {self.done + 1}"
        stored = f" ({self.skipped} already stored)" if self.skipped else ""
        eta = self.eta(now)
        return (
            f"{self.desc}: {where}{stored}, {self.queries:,} queries, {format_seconds(now - self.start)} elapsed, "
            f"ETA {'?' if eta is None else format_seconds(eta)}"
        )

    def close(self, finished: bool) -> None:
        """Write the summary line: clips explained (or where the run stopped), queries and time."""
        seconds = format_seconds(time.perf_counter() - self.start)
        if finished:
            text = f"{self.desc}: {self.done} clips explained, {self.queries:,} queries in {seconds}"
        else:
            text = f"{self.desc}: stopped after {self.done} clips, {self.queries:,} queries in {seconds}"
        if self.skipped:
            text += f" ({self.skipped} already stored)"
        self.finish(text, finished)
