"""What to tell a user whose model takes its waveforms in another layout than the input's.

FreqReX calls the model on waveforms shaped as the input: ``(N, time)`` for a ``(batch, time)``
clip, ``(N, channels, time)`` for a ``(batch, channels, time)`` one. A model whose front end is a
``Conv1d`` on one channel takes ``(batch, 1, time)``, and on a ``(batch, time)`` batch it fails
with torch's error about channels (the batch reads as one unbatched example of that many
channels), or, on a single ``(1, time)`` waveform, runs as one unbatched channel and returns no row
of scores. Neither message names the input's shape. After such a failure, one call on a single
waveform with the channel axis added (or, for a ``(batch, 1, time)`` input, dropped) says whether
the layout is the cause; :func:`layout_note` then names the fix.
"""

from __future__ import annotations

from typing import Callable, Optional

from torch import Tensor

__all__ = ["layout_note"]


def layout_note(waveforms: Tensor, scores_one_row: Callable[[Tensor], bool]) -> Optional[str]:
    r"""The fix for a model that failed on ``waveforms`` and takes another layout (None: it does not).

    Args:
        waveforms (Tensor): What the model failed on, ``(N, time)`` or ``(N, channels, time)``.
        scores_one_row (Callable): ``scores_one_row(waveform)``: whether the model, called on this one
                    waveform (uncounted), runs and gives one row of scores.

    Returns:
        str or None: A note naming the layout the model takes and how to give it that; None where
        the waveforms are not ``(N, time)`` or ``(N, 1, time)``, or the other layout fails too.
    """
    if waveforms.dim() == 2:
        one, shape, fix, wrap = waveforms[:1].unsqueeze(1), "(batch, 1, time)", "with a channel axis, x.unsqueeze(1)", "unsqueeze"
    elif waveforms.dim() == 3 and waveforms.shape[1] == 1:
        one, shape, fix, wrap = waveforms[:1, 0], "(batch, time)", "without its channel axis, x.squeeze(1)", "squeeze"
    else:
        return None
    if not scores_one_row(one):
        return None
    return (
        f"the model takes waveforms shaped {shape}: it failed on the {tuple(waveforms.shape)} waveforms FreqReX "
        f"calls it on (shaped as the input) and scores one shaped {tuple(one.shape)}; pass the input {fix} "
        f"(or wrap the model, lambda w: model(w.{wrap}(1)); on the command line, a package.module:callable "
        "that returns such a module)"
    )
