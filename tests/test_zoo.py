"""The example-model zoo: every shipped model and clip loads, and agrees with its card."""

import importlib.util
import subprocess
import sys

import pytest
import torch

from captum_freqrex import zoo

TRAINED = ["instruments", "speech", "percussion", "percussion-wave"]
#: The 85 % target, except for the waveform model, built for transferability checks rather than
#: accuracy: 0.832 held out (balanced 0.878, the log-mel model's 0.878).
MIN_ACCURACY = {"percussion-wave": 0.80}
HAS_SILERO = importlib.util.find_spec("silero_vad") is not None


def test_available_names():
    assert zoo.available() == ["instruments", "speech", "percussion", "percussion-wave", "silero-vad"]


@pytest.mark.parametrize("call", [zoo.load, zoo.sample_clips, lambda name: zoo.load_clip(name, 0)])
def test_unknown_name_lists_the_available_ones(call):
    with pytest.raises(ValueError, match="unknown zoo model 'nope'.*instruments, speech, percussion, percussion-wave, silero-vad"):
        call("nope")


def test_clip_index_out_of_range():
    with pytest.raises(IndexError, match="ships 5 clips"):
        zoo.load_clip("percussion", 99)


@pytest.mark.parametrize("name", TRAINED)
def test_trained_model_loads_with_its_card(name):
    m = zoo.load(name)
    assert isinstance(m, zoo.ZooModel) and m.name == name
    assert not m.model.training
    assert all(not p.requires_grad for p in m.model.parameters())
    assert m.sample_rate == 16000 and isinstance(m.num_samples, int)
    assert m.class_names == tuple(m.info["class_names"]) and len(m.class_names) >= 5
    info = m.info
    assert isinstance(info["seed"], int)
    assert info["data"]["recipe"] and info["licence"]["weights"] and info["licence"]["data"]
    assert info["held_out"]["accuracy"] >= MIN_ACCURACY.get(name, 0.85), f"{name}: held-out accuracy below its target"
    assert info["held_out"]["n"] >= 100
    with pytest.raises(AttributeError):
        m.name = "other"  # frozen dataclass



def test_the_instruments_model_takes_short_clips_as_they_are():
    """It trains on 4 s crops and never saw zero padding: the first 3 s of each shipped clip are
    classified as the clip is, and zero-padded to its 30 s they are classified as silence is. So
    short clips are not padded for it (pad_short_clips), and are for the models trained on padded
    clips."""
    m = zoo.load("instruments")
    assert m.pad_short_clips is False and m.model.pad_short_clips is False
    assert all(zoo.load(name).pad_short_clips for name in TRAINED if name != "instruments")
    with torch.no_grad():
        silence = int(m.model(torch.zeros(1, m.num_samples)).argmax())
        for clip in zoo.sample_clips("instruments"):
            excerpt = clip.waveform[: 3 * m.sample_rate]
            padded = torch.nn.functional.pad(excerpt, (0, m.num_samples - excerpt.numel()))
            assert m.class_names[int(m.model(excerpt[None]).argmax())] == clip.label
            assert int(m.model(padded[None]).argmax()) == silence != m.class_names.index(clip.label)


def test_a_clip_shorter_than_the_pooling_needs_is_padded_by_the_model_itself():
    """Its last time pooling needs 16 frames (1.02 s): a 0.6 s note kept at its own length failed
    inside the network ("Output size is too small"). The model zero-pads such a clip to its
    min_samples (the same scores as a clip padded so beforehand), leaves longer ones as they are,
    and FreqReX explains the short clip, its features the short clip's own bins."""
    from captum_freqrex import FreqReX

    m = zoo.load("instruments")
    assert m.model.min_samples == 1024 + 15 * 1024
    short = zoo.load_clip("instruments", 0).waveform[: int(0.6 * m.sample_rate)][None]
    padded = torch.nn.functional.pad(short, (0, m.model.min_samples - short.shape[-1]))
    with torch.no_grad():
        assert torch.equal(m.model(short), m.model(padded))
    explanation = FreqReX(m.model).explain(short, max_queries=200)[0]
    assert explanation.sufficient.certified and explanation.feature_responsibility.numel() == short.shape[-1] // 2 + 1
    for name in TRAINED:  # the others are padded to their clip length, which their pooling takes
        loaded = zoo.load(name)
        assert getattr(loaded.model, "min_samples", 0) <= loaded.num_samples

@pytest.mark.parametrize("name", TRAINED)
def test_shipped_clips_are_classified_as_the_card_records(name):
    m = zoo.load(name)
    clips = zoo.sample_clips(name)
    entries = m.info["clips"]
    assert len(clips) == len(entries) >= 2
    for clip in clips:
        assert isinstance(clip, zoo.SampleClip)
        assert clip.waveform.dtype == torch.float32 and clip.waveform.shape == (m.num_samples,)
        assert clip.sample_rate == m.sample_rate and clip.label in m.class_names and clip.licence
        assert clip.waveform.abs().max() <= 1.0 and clip.waveform.abs().max() > 0.01
    with torch.inference_mode():
        logits = m.model(torch.stack([c.waveform for c in clips]))
    assert logits.shape == (len(clips), len(m.class_names)) and torch.isfinite(logits).all()
    predicted = [m.class_names[i] for i in logits.argmax(1).tolist()]
    assert predicted == [e["predicted"] for e in entries]
    correct = [p == c.label for p, c in zip(predicted, clips)]
    assert correct == [e["correct"] for e in entries]
    assert sum(correct) / len(correct) == pytest.approx(m.info["clips_accuracy"])
    assert zoo.load_clip(name, 1).name == clips[1].name


def test_rows_of_a_batch_are_independent():
    m = zoo.load("speech")
    clips = torch.stack([c.waveform for c in zoo.sample_clips("speech")])
    with torch.inference_mode():
        batched = m.model(clips)
        single = torch.cat([m.model(c.unsqueeze(0)) for c in clips])
        channel = m.model(clips.unsqueeze(1))  # (B, 1, T) is accepted too
    torch.testing.assert_close(batched, single, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(batched, channel)


@pytest.mark.parametrize("name", ["percussion", "percussion-wave"])
def test_gradients_flow_to_the_input(name):
    """Gradient methods (Integrated Gradients through FrequencyForward) need d logits / d input."""
    m = zoo.load(name)
    x = zoo.load_clip(name, 0).waveform.unsqueeze(0).requires_grad_(True)
    m.model(x)[0].max().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_loading_needs_only_torch():
    code = (
        "import sys; sys.modules['torchaudio'] = None\n"
        "from captum_freqrex.zoo import load\n"
        "import torch\n"
        "for name in ('percussion', 'percussion-wave'):\n"
        "    m = load(name); print(m.model(torch.zeros(1, m.num_samples)).shape)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("torch.Size([1, 5])") == 2


def test_percussion_wave_is_the_percussion_task_built_differently():
    """Same task, classes, clip format, data and shipped clips; another front end and network."""
    mel, wave = zoo.load("percussion"), zoo.load("percussion-wave")
    assert wave.info["task"] == mel.info["task"] and wave.class_names == mel.class_names
    assert (wave.sample_rate, wave.num_samples) == (mel.sample_rate, mel.num_samples)
    assert wave.info["dataset"] == "percussion" and wave.info["data"]["splits"] == mel.info["data"]["splits"]
    assert wave.info["held_out"]["n"] == mel.info["held_out"]["n"] == 131  # the whole test split
    assert isinstance(mel.model, zoo.LogMelCNN) and isinstance(wave.model, zoo.WaveCNN)
    assert [c.name for c in zoo.sample_clips("percussion-wave")] == [c.name for c in zoo.sample_clips("percussion")]
    assert all(e["file"].startswith("percussion_") for e in wave.info["clips"])  # reused, not copied
    assert not any(isinstance(module, zoo.LogMel) for module in wave.model.modules())
    assert wave.info["seed"] == mel.info["seed"] == 0 and wave.info["training"]["threads"] == 1


def test_wave_model_front_end_is_a_learned_filterbank():
    """Its front end starts from windowed cosines: a tone excites the filter nearest its frequency."""
    bank = zoo.WaveCNN.cosine_filters(48, 256, 16000)
    assert bank.shape == (48, 256)
    torch.testing.assert_close(bank.norm(dim=1), torch.ones(48))
    model = zoo.WaveCNN(5, n_filters=48, filter_length=256).eval()
    t = torch.arange(16000) / 16000
    energies = model.frontend(torch.sin(2 * torch.pi * 1000.0 * t).unsqueeze(0))  # (1, 48, frames)
    centres = 30.0 * (0.45 * 16000 / 30.0) ** torch.linspace(0, 1, 48)
    assert int(energies.mean(2).argmax()) == int((centres - 1000.0).abs().argmin())
    assert energies.shape[2] == (1 + (16000 - 256) // 8) // 20
    # Its four blocks pool 2x each: 16 frames of 20 filter outputs, 8 samples apart (408 samples
    # was one frame: 1,600 samples then failed inside the pooling, with torch's own message).
    assert model.min_samples == 256 + 8 * (20 * 16 - 1)
    for short in (100, 1600, model.min_samples - 1):
        with pytest.raises(ValueError, match=f"at least {model.min_samples} samples .* zero-pad the clip"):
            model(torch.zeros(1, short))
    assert model(torch.zeros(2, model.min_samples)).shape == (2, 5)
    with pytest.raises(ValueError, match="kernel_size must be odd"):
        zoo.WaveCNN(5, kernel_size=4)


def test_silero_missing_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "silero_vad", None)  # import silero_vad -> ImportError
    with pytest.raises(ImportError, match="pip install silero-vad"):
        zoo.load("silero-vad")


@pytest.mark.skipif(not HAS_SILERO, reason="the optional silero-vad package is not installed (pip install silero-vad)")
def test_silero_speech_probability_is_higher_on_speech():
    threads = torch.get_num_threads()
    m = zoo.load("silero-vad")
    assert torch.get_num_threads() == threads  # import silero_vad's set_num_threads(1) is undone
    assert m.class_names == ("no_speech", "speech") and m.sample_rate == 16000
    speech = zoo.load_clip("speech", 0).waveform
    drums = zoo.load_clip("percussion", 0).waveform
    piano = zoo.load_clip("instruments", 0).waveform[: m.num_samples]
    batch = torch.stack([speech, torch.nn.functional.pad(drums, (0, m.num_samples - drums.shape[0])), piano])
    probs = m.model(batch)
    assert probs.shape == (3, 2)
    torch.testing.assert_close(probs.sum(1), torch.ones(3))
    assert probs[0, 1] > 0.5 > max(probs[1, 1], probs[2, 1])
    # State is reset per call and per row: the same clip alone gives the same probability.
    torch.testing.assert_close(m.model(batch[:1]), probs[:1], atol=1e-4, rtol=1e-4)
    # Shorter than one VAD frame: a message that names the minimum, not the TorchScript module's.
    with pytest.raises(ValueError, match="at least 512 samples .* got 511"):
        m.model(speech[None, :511])
    assert m.model(speech[None, :512]).shape == (1, 2)


@pytest.mark.skipif(not HAS_SILERO, reason="the optional silero-vad package is not installed (pip install silero-vad)")
def test_silero_shipped_clips_as_recorded():
    m = zoo.load("silero-vad")
    clips = zoo.sample_clips("silero-vad")
    assert all(c.waveform.shape == (m.num_samples,) for c in clips)
    predicted = [m.class_names[i] for i in m.model(torch.stack([c.waveform for c in clips])).argmax(1).tolist()]
    assert predicted == [e["predicted"] for e in m.info["clips"]]
    assert {c.label for c in clips} == {"speech", "no_speech"}


@pytest.mark.skipif(not HAS_SILERO, reason="the optional silero-vad package is not installed (pip install silero-vad)")
def test_freqrex_certifies_its_sets_on_silero_vad():
    from captum_freqrex import FreqReX

    m = zoo.load("silero-vad")
    speech = zoo.load_clip("silero-vad", 0).waveform.unsqueeze(0)
    explanation = FreqReX(m.model).explain(speech, seed=0, max_queries=400)[0]
    assert m.class_names[explanation.target] == "speech"
    sufficient = explanation.sufficient
    assert sufficient is not None and sufficient.certified
    assert sufficient.size < explanation.feature_responsibility.numel() // 4  # a small part of 24,001 bins
    # Re-query the third-party model ourselves: the sufficient signal alone is still speech.
    kept = explanation.waveform("sufficient")
    assert m.model(kept.reshape(1, -1)).argmax(1).item() == explanation.target
    necessary = explanation.sufficient_necessary
    if necessary is not None and necessary.certified:
        removed = explanation.waveform("sufficient_necessary", removed=True)
        assert m.model(removed.reshape(1, -1)).argmax(1).item() != explanation.target


def test_a_zoo_load_result_passed_as_the_model_is_told_to_pass_its_model():
    """``zoo.load`` returns a ZooModel (model, rate, class names), not a callable: FreqReX and the
    metrics refuse it when built, naming ``.model``, and take ``loaded.model``."""
    from captum_freqrex import FreqReX, metrics

    loaded = zoo.load("percussion")
    with pytest.raises(TypeError, match=r"got a ZooModel, which holds its model in \.model: pass that model"):
        FreqReX(loaded)
    clip = zoo.load_clip("percussion", 0).waveform.unsqueeze(0)
    with pytest.raises(TypeError, match=r"holds its model in \.model"):
        metrics.perturbation_success_rate(loaded, clip, torch.ones(1, clip.shape[-1] // 2 + 1), k=1)
    with pytest.raises(TypeError, match=r"must be callable \(waveforms to scores\), got int"):
        FreqReX(42)
    assert FreqReX(loaded.model).forward_func is loaded.model
