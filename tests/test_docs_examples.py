"""Every Python block of README.md and docs/*.md runs, as a reader would run it.

The blocks of one page run in order in one namespace (a later block uses what an earlier one
defined), in a fresh temporary folder. Python blocks are fenced ```python or ```{code-cell} python;
shell, text and other blocks are not run. A block that cannot run as written (it needs the reader's
own files) starts with a line ``# not run: <why>`` and is skipped; one that takes long starts with
``# slow: <why>`` and runs only with ``-m slow`` (the page runs twice then: without and with it).
CONTRIBUTING.md documents both. Pages import only the public API: no ``captum_freqrex._...`` module.
"""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path
from typing import List, NamedTuple

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
PYTHON_INFOS = {"python", "{code-cell} python", "{code-cell} ipython3"}
SKIP_MARK = "# not run:"
SLOW_MARK = "# slow:"
FENCE = re.compile(
    r"^(?P<indent> *)(?P<fence>`{3,})(?P<info>[^`\n]*)\n(?P<body>.*?)^(?P=indent)(?P=fence)[ \t]*$",
    re.M | re.S,
)

# What the text around a block says it prints, checked on the page's whole output.
PRINTS = {
    "README.md": [r"^tensor\(\[True\]\)$"],
    "docs/comparing.md": [r"FreqReX\s+top band 400-450 Hz \(A4 is 440 Hz\)"],
    "docs/quickstart.md": [r"^A4 confidence", r"flips the decision to C5", r"top bins \(Hz\): \[440\.0"],
    "docs/datasets.md": [r"^5 0 0$", r"^kick\s+\d+\s+\d+\s"],  # five clips explained, none stored before, none failed
}


class Block(NamedTuple):
    page: str
    line: int
    code: str


def python_blocks(page: Path) -> List[Block]:
    """The page's Python blocks in order, with their first line number, dedented."""
    return blocks_of(page.read_text(encoding="utf-8"), str(page.relative_to(ROOT)))


def blocks_of(text: str, name: str) -> List[Block]:
    blocks = []
    for match in FENCE.finditer(text):
        if match["info"].strip() not in PYTHON_INFOS:
            continue
        indent = len(match["indent"])
        code = "\n".join(line[indent:] for line in match["body"].splitlines())
        line = text.count("\n", 0, match.start()) + 2
        blocks.append(Block(name, line, code))
    return blocks


def test_extractor_finds_python_blocks_only():
    page = "# T\n\n```bash\nls\n```\n\n```python\nx = 1\n```\n\n  ```{code-cell} python\n  y = x\n  ```\n"
    assert [(b.line, b.code) for b in blocks_of(page, "t.md")] == [(8, "x = 1"), (12, "y = x")]


def test_pages_have_python_blocks_and_no_private_imports():
    blocks = [b for page in PAGES for b in python_blocks(page)]
    assert len(blocks) >= 20
    private = [f"{b.page}:{b.line}" for b in blocks if re.search(r"captum_freqrex(\.\w+)*\._", b.code)]
    assert private == [], "public docs import private modules"
    unexplained = [f"{b.page}:{b.line}" for b in blocks for mark in (SKIP_MARK, SLOW_MARK)
                   if b.code.startswith(mark) and not b.code.splitlines()[0][len(mark):].strip()]
    assert unexplained == [], "a skipped block says why it cannot run"


def _cases() -> list:
    cases = []
    for page in PAGES:
        blocks = python_blocks(page)
        if blocks:
            cases.append(pytest.param(page, False, id=page.name))
        if any(b.code.startswith(SLOW_MARK) for b in blocks):
            cases.append(pytest.param(page, True, id=f"{page.name}-with-slow", marks=pytest.mark.slow))
    return cases



def _percussion_clip_folder(folder: Path) -> None:
    """The zoo's five shipped percussion clips as a folder of class folders (``kick/0.wav``, ...)."""
    import soundfile as sf

    from captum_freqrex import zoo

    for clip in zoo.sample_clips("percussion"):
        (folder / clip.label).mkdir(parents=True)
        sf.write(str(folder / clip.label / "0.wav"), clip.waveform.numpy(), clip.sample_rate, subtype="FLOAT")


#: What a page's examples expect in the reader's folder, made before they run.
PAGE_FILES = {"docs/datasets.md": lambda root: _percussion_clip_folder(root / "my_clips")}

@pytest.mark.parametrize(("page", "with_slow"), _cases())
def test_page_examples_run(page, with_slow, tmp_path, monkeypatch):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    monkeypatch.chdir(tmp_path)
    make_files = PAGE_FILES.get(str(page.relative_to(ROOT)))
    if make_files is not None:
        make_files(tmp_path)
    namespace: dict = {"__name__": "__main__"}
    out = io.StringIO()
    for block in python_blocks(page):
        if block.code.startswith(SKIP_MARK) or (block.code.startswith(SLOW_MARK) and not with_slow):
            continue
        with contextlib.redirect_stdout(out):
            try:
                exec(compile(block.code, f"{block.page}:{block.line}", "exec"), namespace)
            except Exception as error:
                raise AssertionError(f"{block.page}, block at line {block.line}: {error!r}") from error
    plt.close("all")
    printed = out.getvalue()
    for pattern in PRINTS.get(str(page.relative_to(ROOT)), []):
        assert re.search(pattern, printed, re.M), f"{page.name} does not print {pattern!r}:\n{printed}"
