"""The HTML report: self-contained, and it works in a real browser (headless Chromium).

The browser tests need Debian's ``chromium`` and ``chromium-driver`` and the ``selenium`` package
(the ``dev`` extra); without them they are skipped, saying which is missing.
"""

import base64
import io
import json
import os
import re
import shutil
import struct
import tempfile
import wave
from html.parser import HTMLParser

import pytest
import torch

pytest.importorskip("matplotlib")

from captum_freqrex import FreqReX  # noqa: E402
from captum_freqrex.report import explanation_html, wav_bytes  # noqa: E402
from known_models import SAMPLE_RATE, ToneClassifier, tone  # noqa: E402

CLASSES = ["A4 440 Hz", "C6 1 kHz", "2.5 kHz", "none"]


class _Elements(HTMLParser):
    """Every start tag with its attributes, in order."""

    def __init__(self):
        super().__init__()
        self.tags = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def _elements(text):
    parser = _Elements()
    parser.feed(text)
    return parser.tags


def _payload(uri, mime):
    prefix = f"data:{mime};base64,"
    assert uri.startswith(prefix)
    return base64.b64decode(uri[len(prefix):])


@pytest.fixture(scope="module")
def clip():
    g = torch.Generator().manual_seed(0)
    return (0.2 * tone(440) + 0.5 * tone(1000) + 0.3 * tone(2500) + 0.01 * torch.randn(SAMPLE_RATE, generator=g)).unsqueeze(0)


@pytest.fixture(scope="module")
def explanation(clip):
    return FreqReX(ToneClassifier([440, 1000, 2500])).explain(clip, max_queries=200, seed=1)[0]


@pytest.fixture(scope="module")
def report(explanation, tmp_path_factory):
    path = tmp_path_factory.mktemp("report") / "report.html"
    explanation.to_html(str(path), SAMPLE_RATE, class_names=CLASSES, title="tones <test>", details={"model": "tones"})
    return path


def test_wav_bytes_are_a_16_bit_wav_of_the_samples():
    samples = 0.5 * tone(440, 0.1)
    with wave.open(io.BytesIO(wav_bytes(samples, SAMPLE_RATE))) as handle:
        assert (handle.getnchannels(), handle.getsampwidth(), handle.getframerate()) == (1, 2, SAMPLE_RATE)
        frames = handle.readframes(handle.getnframes())
    decoded = torch.tensor(struct.unpack(f"<{len(samples)}h", frames), dtype=torch.float32) / 32767
    assert torch.allclose(decoded, samples, atol=1 / 32767)


def test_report_is_self_contained_with_every_signal_and_figure(report, explanation, clip):
    text = report.read_text(encoding="utf-8")
    tags = _elements(text)
    for tag, attrs in tags:  # nothing is fetched: every source is embedded
        for key in ("src", "href"):
            if key in attrs:
                assert attrs[key].startswith("data:"), (tag, attrs[key][:60])
    assert not re.search(r"https?://", text)
    audios = [attrs for tag, attrs in tags if tag == "audio"]
    found = [name for name, s in explanation.sets.items() if s is not None]
    expected = ["original"] + [f"{n}{r}" for n in found for r in ("", "_removed")]
    assert [a["data-signal"] for a in audios] == expected
    for attrs in audios:
        with wave.open(io.BytesIO(_payload(attrs["src"], "audio/wav"))) as handle:
            assert handle.getframerate() == SAMPLE_RATE and handle.getnframes() == clip.shape[-1]
    images = [attrs for tag, attrs in tags if tag == "img"]
    assert [i["data-figure"] for i in images] == ["responsibility", "spectrograms"]
    for attrs in images:
        png = _payload(attrs["src"], "image/png")
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and struct.unpack(">II", png[16:24])[0] > 100  # width


def test_report_states_each_sets_certification_and_the_facts(report, explanation):
    text = report.read_text(encoding="utf-8")
    tags = _elements(text)
    rows = {attrs["data-set"]: attrs["data-certified"] for tag, attrs in tags if tag == "tr" and "data-set" in attrs}
    assert rows == {
        name: ("none" if s is None else str(s.certified).lower()) for name, s in explanation.sets.items()
    }
    assert "tones &lt;test&gt;" in text and "<test>" not in text  # escaped
    assert "440 Hz" in text or "440" in text
    classes = [attrs["data-class"] for tag, attrs in tags if tag == "tr" and "data-class" in attrs]
    assert classes == [str(i) for i in range(len(CLASSES))]
    embedded = re.search(r'<script type="application/json" id="freqrex-summary">(.*?)</script>', text, re.S)
    summary = json.loads(embedded.group(1))
    assert summary["sets"]["sufficient"]["frequencies_hz"] == explanation.summary(SAMPLE_RATE)["sets"]["sufficient"]["frequencies_hz"]
    assert summary["settings"]["seed"] == 1 and "max_queries" in text
    assert "No warnings." in text


def test_report_shows_warnings_and_a_set_that_is_not_found(clip):
    # Explaining a class the model does not decide: a warning, and no necessary or complete set.
    from captum_freqrex import FreqReXWarning

    with pytest.warns(FreqReXWarning, match="not the model's decision"):
        expl = FreqReX(ToneClassifier([440, 1000, 2500])).explain(clip, target=0, max_queries=200)[0]
    assert expl.warnings
    text = explanation_html(expl, SAMPLE_RATE, class_names=CLASSES)
    for warning in expl.warnings:
        assert f"<li>{warning.replace('&', '&amp;').replace(chr(39), '&#x27;')}</li>" in text
    tags = _elements(text)
    missing = [a["data-set"] for t, a in tags if t == "tr" and a.get("data-certified") == "none"]
    assert missing == [name for name, s in expl.sets.items() if s is None] and missing


def test_cli_writes_the_report_and_guards_it(tmp_path, capsys):
    sf = pytest.importorskip("soundfile")
    from captum_freqrex.cli import main

    model_path = tmp_path / "tones.pt"
    torch.jit.trace(ToneClassifier([440, 1000, 2500]).eval(), torch.randn(2, SAMPLE_RATE)).save(str(model_path))
    audio = tmp_path / "clip.wav"
    sf.write(str(audio), (0.5 * tone(1000) + 0.2 * tone(440)).numpy(), SAMPLE_RATE)
    argv = ["explain", str(audio), "--model", str(model_path), "--sample-rate", str(SAMPLE_RATE), "--max-queries", "200"]
    out = tmp_path / "out"
    assert main([*argv, "--out", str(out), "--html", "--audio-files", "all", "--bins-csv"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["files"]["report"] == "report.html" and (out / "report.html").stat().st_size > 10_000
    assert summary["files"]["bins_table"] == "bins.csv" and (out / "bins.csv").exists()
    assert summary["files"]["sufficient_listen"] == "sufficient.listen.wav"
    notes = summary["file_notes"]
    assert "TRUE level" in notes["sufficient.wav"] and "LISTENING COPY" in notes["sufficient.listen.wav"]
    assert set(notes) == set(summary["files"].values())
    assert sorted(p.name for p in out.iterdir()) == sorted([*summary["files"].values(), "summary.json"])
    printed = capsys.readouterr().out
    assert "at 1000 Hz" in printed  # the CLI lists the sufficient set's frequency
    # The overwrite guard knows the new files.
    for name in ("report.html", "sufficient.listen.wav", "bins.csv"):
        again = tmp_path / f"again-{name}"
        again.mkdir()
        (again / name).write_text("mine")
        assert main([*argv, "--out", str(again)]) == 2
        assert f"{again / name} already exists" in capsys.readouterr().err
        assert (again / name).read_text() == "mine"
    # --overwrite without --html removes the earlier run's report.
    assert main([*argv, "--out", str(out), "--overwrite"]) == 0
    assert not (out / "report.html").exists()


def _wav_info(data):
    with wave.open(io.BytesIO(data)) as handle:
        return handle.getframerate(), handle.getnframes()


def test_linked_report_holds_no_audio_and_its_links_resolve(explanation, clip, tmp_path):
    from captum_freqrex.report import write_html

    embedded = write_html(explanation, str(tmp_path / "embedded.html"), SAMPLE_RATE)
    linked = write_html(explanation, str(tmp_path / "linked.html"), SAMPLE_RATE, audio="link")
    text = (tmp_path / "linked.html").read_text(encoding="utf-8")
    audios = [attrs for tag, attrs in _elements(text) if tag == "audio"]
    assert len(audios) == 7 and "data:audio" not in text
    for attrs in audios:  # relative links into report_files/, each a WAV of the whole clip
        assert attrs["src"] == f"linked_files/{attrs['data-signal']}.listen.wav"
        target = tmp_path / attrs["src"]
        assert _wav_info(target.read_bytes()) == (SAMPLE_RATE, clip.shape[-1])
    assert sorted(p.name for p in (tmp_path / "linked_files").iterdir()) == sorted(
        f"{a['data-signal']}.listen.wav" for a in audios
    )
    # The page without its audio: smaller than the embedded one by at least the WAVs' base64.
    wav_bytes_total = sum((tmp_path / a["src"]).stat().st_size for a in audios)
    assert os.path.getsize(linked) < os.path.getsize(embedded) - 4 / 3 * wav_bytes_total + 1_000
    assert os.path.getsize(linked) < 300_000
    with pytest.raises(ValueError, match="audio must be one of"):
        write_html(explanation, str(tmp_path / "x.html"), SAMPLE_RATE, audio="mp3")
    with pytest.raises(FileExistsError):  # never replaced without overwrite
        write_html(explanation, str(tmp_path / "linked.html"), SAMPLE_RATE, audio="link", overwrite=False)


def test_listening_copies_play_at_the_files_own_rate(explanation, clip, tmp_path):
    text = explanation_html(explanation, SAMPLE_RATE, listen_rate=2 * SAMPLE_RATE)
    for tag, attrs in _elements(text):
        if tag == "audio":
            assert _wav_info(_payload(attrs["src"], "audio/wav")) == (2 * SAMPLE_RATE, 2 * clip.shape[-1])


def test_spectrograms_leave_out_the_zero_padding_and_say_so(tmp_path):
    from captum_freqrex.plotting import plot_explanation_spectrograms

    real = SAMPLE_RATE // 4  # 0.25 s of tones, zero-padded to 1 s as a model of 1 s clips would get it
    padded = torch.nn.functional.pad((0.5 * tone(440) + 0.3 * tone(1000))[:real], (0, SAMPLE_RATE - real))
    expl = FreqReX(ToneClassifier([440, 1000, 2500])).explain(padded.unsqueeze(0), max_queries=200, seed=1)[0]
    whole = plot_explanation_spectrograms(expl, SAMPLE_RATE)
    assert whole.axes[0].get_xlim()[1] == pytest.approx(1.0)
    fig = plot_explanation_spectrograms(expl, SAMPLE_RATE, valid_samples=real)
    assert fig.axes[0].get_xlim()[1] == pytest.approx(0.25)
    timed = [ax for ax in fig.axes if ax.get_shared_x_axes().joined(ax, fig.axes[0])]  # not the set strip
    meshes = [c for ax in timed for c in ax.collections if hasattr(c, "get_coordinates")]
    assert len(meshes) == len(timed) > 1 and all(float(m.get_coordinates()[..., 0].max()) <= 0.25 + 1e-9 for m in meshes)
    assert "zero padding from 0.25 s to the model's 1.00 s not drawn" in fig.axes[0].get_title()
    with pytest.raises(ValueError, match="valid_samples"):
        plot_explanation_spectrograms(expl, SAMPLE_RATE, valid_samples=2 * SAMPLE_RATE)


def test_cli_links_the_reports_audio_at_the_files_rate(tmp_path, capsys):
    sf = pytest.importorskip("soundfile")
    from captum_freqrex.cli import main

    model_path = tmp_path / "tones.pt"
    torch.jit.trace(ToneClassifier([440, 1000, 2500]).eval(), torch.randn(2, SAMPLE_RATE)).save(str(model_path))
    audio = tmp_path / "clip.wav"  # the file at twice the model's rate
    t = torch.arange(2 * SAMPLE_RATE) / (2 * SAMPLE_RATE)
    sf.write(str(audio), (0.5 * torch.sin(2 * torch.pi * 1000 * t)).numpy(), 2 * SAMPLE_RATE)
    out = tmp_path / "out"
    argv = ["explain", str(audio), "--model", str(model_path), "--sample-rate", str(SAMPLE_RATE), "--max-queries", "200"]
    assert main([*argv, "--out", str(out), "--html", "--html-audio", "link", "--audio-files", "all"]) == 0
    text = (out / "report.html").read_text(encoding="utf-8")
    sources = [attrs["src"] for tag, attrs in _elements(text) if tag == "audio"]
    assert sources and "data:audio" not in text
    for src in sources:
        assert src.startswith("report_files/") and _wav_info((out / src).read_bytes())[0] == 2 * SAMPLE_RATE
    assert sf.info(str(out / "sufficient.listen.wav")).samplerate == 2 * SAMPLE_RATE  # listening copy
    assert sf.info(str(out / "sufficient.wav")).samplerate == SAMPLE_RATE  # true level: what the model got
    with pytest.raises(SystemExit) as exited:
        main([*argv, "--out", str(tmp_path / "bad"), "--html", "--html-audio", "mp3"])
    assert exited.value.code == 2
    assert "--html-audio" in capsys.readouterr().err


# ----------------------------------------------------------------------------- a real browser


def _browser():
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.skip("the browser tests need selenium (pip install -c constraints.txt -e '.[dev]')")
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    if binary is None or driver_path is None:
        missing = " and ".join(n for n, p in (("chromium", binary), ("chromium-driver", driver_path)) if p is None)
        pytest.skip(f"the browser tests need Debian's {missing} (apt-get install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    profile = tempfile.mkdtemp(prefix="freqrex-chromium-")
    for flag in (
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--autoplay-policy=no-user-gesture-required",
        f"--user-data-dir={profile}", "--window-size=1280,2000",
    ):
        options.add_argument(flag)
    try:
        driver = webdriver.Chrome(service=Service(driver_path), options=options)
    except Exception as error:  # a broken install: say so instead of failing the suite
        shutil.rmtree(profile, ignore_errors=True)
        pytest.skip(f"chromium did not start under chromedriver: {type(error).__name__}: {error}")
    driver.set_script_timeout(60)
    return driver, profile


@pytest.fixture(scope="module")
def browser():
    driver, profile = _browser()
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


_AUDIO_METADATA = """
const done = arguments[arguments.length - 1];
const audios = Array.from(document.querySelectorAll('audio'));
Promise.all(audios.map(a => a.readyState >= 1 ? null : new Promise((resolve, reject) => {
    a.addEventListener('loadedmetadata', resolve, {once: true});
    a.addEventListener('error', () => reject('audio ' + a.dataset.signal + ': error ' + (a.error && a.error.code)), {once: true});
}))).then(() => done(audios.map(a => ({signal: a.dataset.signal, duration: a.duration}))), e => done({error: String(e)}));
"""

_IMAGES = """
const done = arguments[arguments.length - 1];
const images = Array.from(document.images);
Promise.all(images.map(i => i.decode().catch(e => null))).then(
    () => done(images.map(i => ({figure: i.dataset.figure, width: i.naturalWidth, height: i.naturalHeight}))));
"""


def test_report_plays_and_shows_in_a_headless_browser(browser, report, explanation, clip, tmp_path):
    browser.get(report.as_uri())
    audios = browser.execute_async_script(_AUDIO_METADATA)
    assert not isinstance(audios, dict), audios
    seconds = clip.shape[-1] / SAMPLE_RATE
    assert [a["signal"] for a in audios][0] == "original" and len(audios) == 1 + 2 * sum(
        s is not None for s in explanation.sets.values()
    )
    for entry in audios:
        assert entry["duration"] == pytest.approx(seconds, abs=1e-3), entry
    images = browser.execute_async_script(_IMAGES)
    assert [i["figure"] for i in images] == ["responsibility", "spectrograms"]
    assert all(i["width"] > 100 and i["height"] > 100 for i in images), images
    table = browser.find_element("id", "sets").text
    for name, label in (("sufficient", "sufficient"), ("complete", "complete")):
        if explanation.sets[name] is not None:
            assert label in table
    assert "certified" in table and "1000 Hz" in table.replace("\n", " ")
    assert "No warnings." in browser.find_element("id", "warnings").text
    height = browser.execute_script("return document.body.scrollHeight")
    browser.set_window_size(1280, min(int(height) + 40, 8000))
    shot = tmp_path / "report.png"
    assert browser.save_screenshot(str(shot))
    assert shot.stat().st_size > 50_000
    keep = os.environ.get("FREQREX_SCREENSHOT_DIR")  # to look at it: FREQREX_SCREENSHOT_DIR=/tmp pytest ...
    if keep:
        shutil.copy(shot, os.path.join(keep, "report.png"))
