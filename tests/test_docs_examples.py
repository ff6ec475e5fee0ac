"""Every Python block of README.md and docs/*.md runs, as a reader would run it.

The blocks of one page run in order in one namespace (a later block uses what an earlier one
defined), in a fresh temporary folder. Python blocks are fenced ```python or ```{code-cell} python;
shell, text and other blocks are not run. Every Python block runs in the default suite: none is
skipped or left to ``-m slow`` (a block that needs the reader's files gets them from
``PAGE_FILES``; a long measurement runs at a small scale, its full-scale figures in the prose).
Pages import only the public API: no ``captum_freqrex._...`` module.
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
#: First lines that once marked a block skipped or slow; no block may start with them now.
SKIP_MARKS = ("# not run", "# slow")
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
    "docs/method.md": [r"^\d+ True ShrinkReport\("],  # the adaptive search's shrunk set is certified
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
    skipped = [f"{b.page}:{b.line}" for b in blocks if b.code.lstrip().startswith(SKIP_MARKS)]
    assert skipped == [], "every block runs: give it the files it reads (PAGE_FILES) or a smaller scale"


def _cases() -> list:
    return [pytest.param(page, id=page.name) for page in PAGES if python_blocks(page)]



def _percussion_clip_folder(folder: Path) -> None:
    """The zoo's five shipped percussion clips as a folder of class folders (``kick/0.wav``, ...)."""
    import soundfile as sf

    from captum_freqrex import zoo

    for clip in zoo.sample_clips("percussion"):
        (folder / clip.label).mkdir(parents=True)
        sf.write(str(folder / clip.label / "0.wav"), clip.waveform.numpy(), clip.sample_rate, subtype="FLOAT")


#: What a page's examples expect in the reader's folder, made before they run.
PAGE_FILES = {"docs/datasets.md": lambda root: _percussion_clip_folder(root / "my_clips")}

@pytest.mark.parametrize("page", _cases())
def test_page_examples_run(page, tmp_path, monkeypatch):
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
        with contextlib.redirect_stdout(out):
            try:
                exec(compile(block.code, f"{block.page}:{block.line}", "exec"), namespace)
            except Exception as error:
                raise AssertionError(f"{block.page}, block at line {block.line}: {error!r}") from error
    plt.close("all")
    printed = out.getvalue()
    for pattern in PRINTS.get(str(page.relative_to(ROOT)), []):
        assert re.search(pattern, printed, re.M), f"{page.name} does not print {pattern!r}:\n{printed}"
