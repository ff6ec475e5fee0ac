"""Asking about an ordered list a few items at a time (captum_freqrex._utils.ordered)."""

from captum_freqrex._utils.ordered import ask_until_one_holds


def test_asking_stops_after_the_call_in_which_an_item_holds():
    calls = []

    def ask(chunk):
        calls.append(list(chunk))
        return [item >= 5 for item in chunk]

    assert ask_until_one_holds(range(1, 12), ask, bool, 3) == [False, False, False, False, True, True]
    assert calls == [[1, 2, 3], [4, 5, 6]]  # nothing after the call that held
    calls.clear()
    assert ask_until_one_holds([1, 2, 3, 4], ask, bool, 3) == [False] * 4 and calls == [[1, 2, 3], [4]]
    assert ask_until_one_holds([], ask, bool, 3) == []
