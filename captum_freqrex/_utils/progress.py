"""Progress on stderr through tqdm: per example, and per model call inside the search of one example.

:func:`progress` iterates over the examples. While it runs, every model call of
:class:`~captum_freqrex._core.model.oracle.Oracle` reports its query count
(:func:`report_queries`), and one tqdm line on stderr says where the run stands::

    FreqReX: example 2/3, 420/1,000 queries (1,217 in all), 1.3 s elapsed, ETA 2.9 s

tqdm draws it (``tqdm.auto``: a widget in a Jupyter notebook with ipywidgets installed, else
text): the line is rewritten in place with a carriage return, at most every ``TTY_INTERVAL_S`` on
a terminal and every ``LOG_INTERVAL_S`` elsewhere (a log file, CI), so that a log stays short.
tqdm's own rate-based ETA only moves per example; ours also counts the current example's share of
its query ``budget``, and the bar's position carries that fraction. The line costs two clock
reads per model call (about 1 us), nothing per frequency bin. The run ends with one summary
line, also when it stops on an error.
"""

from __future__ import annotations

import sys
import time
from contextvars import ContextVar
from typing import Any, Dict, Iterable, Iterator, Optional, TextIO

from tqdm.auto import tqdm

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


class _LineBar(tqdm):
    """A tqdm bar whose text is its owner's line: tqdm throttles, rewrites and draws the widget."""

    def __init__(self, owner: "QueryProgress", **kwargs: Any) -> None:
        self.owner = owner  # before tqdm's __init__, which draws the first line
        super().__init__(**kwargs)

    @property
    def format_dict(self) -> Dict[str, Any]:
        values = super().format_dict
        owner = self.owner
        values["line"] = owner.summary if owner.summary is not None else owner.line(time.perf_counter())
        return values


class QueryProgress:
    r"""One progress line for a run over ``total`` examples, updated by model calls.

    The bar opens (and draws its first line) with the first model call; its position is the
    examples done plus the current one's share, so a notebook widget fills as the line's ETA runs.

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
        self.interval = TTY_INTERVAL_S if isatty and isatty() else LOG_INTERVAL_S
        self.start = time.perf_counter()
        self.queries = 0
        self.done = 0  # finished examples
        self.example_start = self.start
        self.example_queries = 0  # queries when the current example started
        self.bar: Optional[_LineBar] = None
        self.summary: Optional[str] = None  # the closing line, once the run ends

    def begin(self, index: int) -> None:
        """Example ``index`` starts (the ones before it are done)."""
        self.done = index
        self.example_start = time.perf_counter()
        self.example_queries = self.queries
        if index:
            self.show()

    def update(self, queries: int) -> None:
        """The model has answered ``queries`` queries so far in this run."""
        self.queries = queries
        self.show()

    def position(self, now: float) -> float:
        """Examples done, plus the current example's estimated share (from its query budget, or
        from the time the finished examples took)."""
        fraction = 0.0
        if self.budget:
            fraction = min((self.queries - self.example_queries) / self.budget, 1.0)
        elif self.done:
            per_example = (self.example_start - self.start) / self.done
            fraction = min((now - self.example_start) / per_example, 1.0) if per_example > 0 else 1.0
        return self.done + fraction

    def eta(self, now: float) -> Optional[float]:
        """Seconds left, or None while nothing to extrapolate from is known."""
        progress = self.position(now) / self.total if self.total else 1.0
        if progress <= 0:
            return None
        return max((now - self.start) * (1 - progress) / progress, 0.0)

    def line(self, now: float) -> str:
        """The progress line at time ``now`` (``time.perf_counter()``)."""
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

    def show(self) -> None:
        """Hand the line to tqdm: the first call opens the bar and draws it, later ones are drawn at
        most every ``interval`` seconds."""
        if self.bar is None:
            self.bar = _LineBar(
                self, total=self.total or None, file=self.stream, bar_format="{line}",
                mininterval=self.interval, miniters=0, smoothing=0, leave=True,
            )
            return
        self.bar.n = self.position(time.perf_counter())
        self.bar.update(0)  # tqdm draws it when ``interval`` has passed

    def finish(self, text: str, finished: bool) -> None:
        """End the run with the summary line ``text`` (a finished bar is full; a stopped one is not,
        which a notebook widget shows in red)."""
        self.summary = text
        if self.bar is None:
            self.show()
        assert self.bar is not None
        if finished and self.total:
            self.bar.n = self.total
        self.bar.close()  # draws the summary and ends the line

    def close(self, finished: bool) -> None:
        """Write the summary line (and end the terminal line)."""
        seconds = format_seconds(time.perf_counter() - self.start)
        if finished:
            text = f"{self.desc}: {self.total}/{self.total} examples, {self.queries:,} queries in {seconds}"
        else:
            text = (
                f"{self.desc}: stopped after {self.done}/{self.total} examples, {self.queries:,} queries in {seconds}"
            )
        self.finish(text, finished)


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
