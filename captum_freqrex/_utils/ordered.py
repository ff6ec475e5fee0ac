"""Asking about an ordered list a few items at a time, until one holds.

Several stages look for the first item of a list that passes (the smallest candidate set, the
loudest peak, the smallest prefix size): asking the whole list in one model call spends queries on
items after the answer. :func:`ask_until_one_holds` asks ``batch`` items per call and stops after
the first call in which one holds.
"""

from __future__ import annotations

from typing import Callable, List, Sequence, TypeVar

Item = TypeVar("Item")
Answer = TypeVar("Answer")


def ask_until_one_holds(
    items: Sequence[Item], ask: Callable[[Sequence[Item]], Sequence[Answer]], holds: Callable[[Answer], bool],
    batch: int,
) -> List[Answer]:
    r"""The answers for ``items`` in order, ``batch`` per call of ``ask``, up to the first call in
    which an answer holds (the items after that call are not asked).

    Args:
        items (sequence): What to ask about, in order.
        ask (Callable): ``ask(chunk) -> answers``, one answer per item of the chunk.
        holds (Callable): ``holds(answer) -> bool``.
        batch (int): Items per call (at least 1).

    Returns:
        list: The answers of the items asked, a prefix of ``items``; all of them when none holds.
    """
    answers: List[Answer] = []
    for lo in range(0, len(items), batch):
        chunk = list(ask(items[lo : lo + batch]))
        answers += chunk
        if any(holds(answer) for answer in chunk):
            break
    return answers
