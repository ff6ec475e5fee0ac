"""A minimal progress report on stderr (tqdm when installed)."""

from __future__ import annotations

import sys
from typing import Any, Iterable, Iterator


def progress(items: Iterable[Any], total: int, desc: str, enabled: bool) -> Iterator[Any]:
    """Yield ``items``, reporting progress on stderr when ``enabled``."""
    if not enabled:
        yield from items
        return
    try:
        from tqdm.auto import tqdm
    except ImportError:
        for i, item in enumerate(items):
            print(f"{desc}: {i}/{total}", file=sys.stderr, flush=True)
            yield item
        print(f"{desc}: {total}/{total}", file=sys.stderr, flush=True)
        return
    yield from tqdm(items, total=total, desc=desc)
