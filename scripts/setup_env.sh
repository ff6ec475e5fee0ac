#!/usr/bin/env bash
# Create (or reuse) the project's virtual environment with everything the demo, tests and docs need.
# Idempotent: a stamp records the hash of the inputs; a second run with the same inputs does nothing.
# torch is pinned to the local CPU build through constraints.txt (an unpinned torch pulls CUDA wheels).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}
stamp="$VENV/.freqrex-setup"
want=$(cat pyproject.toml constraints.txt scripts/setup_env.sh | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    exit 0
fi
echo "setting up $VENV (torch CPU, captum, dev tools) ..."
# The machine's pip configuration lists local indexes that may be absent; their warnings are noise.
quiet() { "$@" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2); }
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
pip=("$VENV/bin/python" -m pip install -q --disable-pip-version-check --progress-bar off)
quiet "${pip[@]}" -c constraints.txt "torch==2.13.0"
quiet "${pip[@]}" -c constraints.txt -e ".[dev,vad,ray]"
# PyPI's torchaudio is a CUDA build: install it without dependencies (they would replace torch) and
# drop its compiled extensions, which fail to load on a CPU-only torch. The pure-Python parts
# (resample, mel filter banks) are all the project uses, and nothing needs it at run time:
# captum_freqrex.audio falls back to its torch-only resampler where torchaudio cannot be imported
# (the tests compare the two). The core never imports torchaudio.
# dev covers every other extra's packages (audio, compare); vad brings silero-vad, ray the Ray backend
# of freqrex explain-dataset (its wheel needs no torch).
quiet "${pip[@]}" --no-deps "torchaudio==2.11.0"
rm -f "$VENV"/lib/python*/site-packages/torchaudio/lib/*.so
"$VENV/bin/python" -m ipykernel install --sys-prefix >/dev/null
echo "$want" >"$stamp"
echo "environment ready: $VENV"
