"""Progress on stderr: per example, and per model call inside the search of one example.

:func:`progress` iterates over the examples. While it runs, every model call of
:class:`~captum_freqrex._core.model.oracle.Oracle` reports its query count
(:func:`report_queries`), and one line on stderr says where the run stands::

    FreqReX: example 2/3, 420/1,000 queries (1,217 in all), 1.3 s elapsed, ETA 2.9 s

On a terminal the line is rewritten in place (at most every ``TTY_INTERVAL_S``); elsewhere (a log
file, CI) a new line is written at most every ``LOG_INTERVAL_S``. The line costs a clock read
per model call, nothing per frequency bin. The ETA extrapolates from the examples done and, with
a query ``budget`` per example, from the current example's share of it. The run ends with one
summary line, also when it stops on an error.
"""

from __future__ import annotations

import sys
import time
from contextvars import ContextVar
from typing import Any, Iterable, Iterator, Optional, TextIO

#: Least seconds between two rewrites of the progress line on a terminal.
TTY_INTERVAL_S = 0.1
#: Least seconds between two progress lines when stderr is not a terminal.
LOG_INTERVAL_S = 5.0


def format_seconds(value: float) -> str:
    """A duration for a progress line: ``"12.3 s"`` under a minute, else minutes and seconds (hours too)."""
    if value < 60:
        return f"{value:.1f} s"
    minutes, seconds = divmod(int(round(value)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"


class QueryProgress:
    r"""One progress line for a run over ``total`` examples, updated by model calls.

    Args:
        desc (str): What runs (the line's prefix).
        total (int): Number of examples.
        budget (int, optional): Expected queries per example, for the ETA inside the first
                    example (None: the ETA comes from finished examples only). Default: None
        stream (TextIO, optional): Where to write. Default: ``sys.stderr``
    """

    def __init__(self, desc: str, total: int, budget: Optional[int] = None, stream: Optional[TextIO] = None) -> None:
        self.desc, self.total, self.budget = desc, total, budget
        self.stream = stream if stream is not None else sys.stderr
        isatty = getattr(self.stream, "isatty", None)
        self.tty = bool(isatty and isatty())
        self.interval = TTY_INTERVAL_S if self.tty else LOG_INTERVAL_S
        self.start = time.perf_counter()
        self.last_write = -float("inf")
        self.width = 0
        self.queries = 0
        self.done = 0  # finished examples
        self.example_start = self.start
        self.example_queries = 0  # queries when the current example started

    def begin(self, index: int) -> None:
        """Example ``index`` starts (the ones before it are done)."""
        self.done = index
        self.example_start = time.perf_counter()
        self.example_queries = self.queries
        if index:
            self._write()

    def update(self, queries: int) -> None:
        """The model has answered ``queries`` queries so far in this run."""
        self.queries = queries
        self._write(force=self.last_write == -float("inf"))  # the first call, whatever the interval

    def eta(self, now: float) -> Optional[float]:
        """Seconds left, or None while nothing to extrapolate from is known."""
        elapsed = now - self.start
        fraction = 0.0
        if self.budget:
            fraction = min((self.queries - self.example_queries) / self.budget, 1.0)
        elif self.done:
            per_example = (self.example_start - self.start) / self.done
            fraction = min((now - self.example_start) / per_example, 1.0) if per_example > 0 else 1.0
        progress = (self.done + fraction) / self.total if self.total else 1.0
        if progress <= 0:
            return None
        return max(elapsed * (1 - progress) / progress, 0.0)

    def line(self, now: float) -> str:
        eta = self.eta(now)
        where = f"example {min(self.done + 1, self.total)}/{self.total}, " if self.total > 1 else ""
        count = f"{self.queries - self.example_queries:,}"
        if self.budget:
            count += f"/{self.budget:,}"
        overall = f" ({self.queries:,} in all)" if self.done and self.total > 1 else ""
        return (
            f"{self.desc}: {where}{count} queries{overall}, {format_seconds(now - self.start)} elapsed, "
            f"ETA {'?' if eta is None else format_seconds(eta)}"
        )

    def _write(self, force: bool = False, text: Optional[str] = None, end: str = "") -> None:
        now = time.perf_counter()
        if not force and now - self.last_write < self.interval:
            return
        self.last_write = now
        text = self.line(now) if text is None else text
        if self.tty:
            self.stream.write("\r" + text.ljust(self.width) + end)
            self.width = len(text)
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def close(self, finished: bool) -> None:
        """Write the summary line (and end the terminal line)."""
        seconds = format_seconds(time.perf_counter() - self.start)
        if finished:
            text = f"{self.desc}: {self.total}/{self.total} examples, {self.queries:,} queries in {seconds}"
        else:
            text = (
                f"{self.desc}: stopped after {self.done}/{self.total} examples, {self.queries:,} queries in {seconds}"
            )
        self._write(force=True, text=text, end="\n")


#: The progress line that model queries report to (FreqReX's, or a data-set run's), if any.
ACTIVE_PROGRESS: "ContextVar[Optional[QueryProgress]]" = ContextVar("freqrex_query_progress", default=None)


def report_queries(queries: int, budget: Optional[int] = None) -> None:
    """Called after every model call with the run's query count (and the query budget per example,
    when known); updates the active progress line."""
    active = ACTIVE_PROGRESS.get()
    if active is not None:
        if active.budget is None and budget:
            active.budget = int(budget)
        active.update(queries)


def progress(
    items: Iterable[Any], total: int, desc: str, enabled: bool, budget: Optional[int] = None
) -> Iterator[Any]:
    """Yield ``items`` (the examples), reporting progress on stderr when ``enabled``: per example and
    per model call (see :class:`QueryProgress`; ``budget`` is the expected queries per example)."""
    if not enabled:
        yield from items
        return
    bar = QueryProgress(desc, total, budget)
    token = ACTIVE_PROGRESS.set(bar)
    finished = False
    try:
        for index, item in enumerate(items):
            bar.begin(index)
            yield item
        bar.done = total
        finished = True
    finally:
        try:
            ACTIVE_PROGRESS.reset(token)
        except ValueError:  # closed from another context (garbage collection)
            ACTIVE_PROGRESS.set(None)
        bar.close(finished)
