"""FreqReXOptions: one frozen, validated options object per call, the same as the keywords."""

import dataclasses

import pytest
import torch

from captum_freqrex import FreqReX, FreqReXOptions


class Counting(torch.nn.Module):
    """Wraps a model and counts its calls."""

    def __init__(self, model):
        super().__init__()
        self.model, self.calls = model, 0

    def forward(self, x):
        self.calls += 1
        return self.model(x)


def _same_explanations(a, b):
    for x, y in zip(a, b):
        assert torch.equal(x.responsibility, y.responsibility)
        assert torch.equal(x.ranking, y.ranking)
        for name in ("sufficient", "sufficient_necessary", "complete"):
            p, q = getattr(x, name), getattr(y, name)
            assert (p is None) == (q is None)
            if p is not None:
                assert torch.equal(p.mask, q.mask) and p.certified == q.certified
        assert x.settings == y.settings


@pytest.mark.parametrize("changes", [dict(), dict(mode="necessary"), dict(shrink=True, max_queries=300)])
def test_an_options_object_gives_what_its_keywords_give(classifier, tone_clip, changes):
    explainer = FreqReX(classifier)
    by_keywords = explainer.explain(tone_clip, **changes)
    by_object = explainer.explain(tone_clip, options=FreqReXOptions(**changes))
    _same_explanations(by_keywords, by_object)
    search_changes = {k: v for k, v in changes.items() if k != "shrink"}
    torch.testing.assert_close(
        explainer.attribute(tone_clip, options=FreqReXOptions(**search_changes)),
        explainer.attribute(tone_clip, **search_changes), rtol=0, atol=0,
    )


def test_options_and_a_changed_keyword_together_are_refused(classifier, tone_clip):
    model = Counting(classifier)
    with pytest.raises(TypeError, match="either as keywords or as options=.*max_queries"):
        FreqReX(model).explain(tone_clip, max_queries=200, options=FreqReXOptions())
    with pytest.raises(TypeError, match="options must be a FreqReXOptions, got dict"):
        FreqReX(model).attribute(tone_clip, options={"mode": "necessary"})
    assert model.calls == 0


def test_options_are_frozen_and_checked_when_built():
    options = FreqReXOptions(mode="necessary")
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.mode = "sufficient"
    with pytest.raises(ValueError, match="mode must be one of 'sufficient', 'necessary', got 'both'"):
        FreqReXOptions(mode="both")
    with pytest.raises(ValueError, match="n_pieces must be in \\[2, 8\\], got 9"):
        options.replace(n_pieces=9)
    with pytest.raises(TypeError, match="seed must be an int"):
        FreqReXOptions(seed=1.5)
    assert not options.replace(shrink=False).shrink and options.shrink  # shrink is on by default
    assert FreqReXOptions(**options.as_dict()) == options


def test_a_bad_option_is_refused_before_the_model_is_called(classifier, tone_clip):
    model = Counting(classifier)
    with pytest.raises(ValueError, match="confidence_filter must be in \\[0, 1\\), got 1.5"):
        FreqReX(model).explain(tone_clip, confidence_filter=1.5)
    assert model.calls == 0


def test_the_explainer_reads_back_as_its_configuration(classifier):
    text = repr(FreqReX(classifier, search="energy", output=0))
    assert text.startswith("FreqReX(model=ToneClassifier, domain=RfftDomain()")
    assert "order='energy'" in text and "output=0" in text and "synthesis='auto'" in text


@pytest.mark.parametrize("method", ["attribute", "explain"])
def test_the_signatures_default_to_the_options_defaults(method):
    # Captum-style signatures spell their defaults out; they must be the options object's.
    import inspect

    defaults = FreqReXOptions()
    parameters = inspect.signature(getattr(FreqReX, method)).parameters
    shared = [name for name in parameters if hasattr(defaults, name)]
    assert len(shared) >= (12 if method == "attribute" else 17)
    assert {n: parameters[n].default for n in shared} == {n: getattr(defaults, n) for n in shared}
