# Every target sets up .venv first (idempotent; see scripts/setup_env.sh).
PY := .venv/bin/python

.PHONY: setup demo test test-fast docs bench clean

setup:
	@bash scripts/setup_env.sh

demo: setup
	@.venv/bin/freqrex demo --overwrite

test: setup
	$(PY) -m ruff check captum_freqrex tests benchmarks scripts
	$(PY) -m mypy
	$(PY) -m pytest -q -p no:cacheprovider
	$(PY) -m sphinx -W --keep-going -q -b html docs docs/_build/html

test-fast: setup
	$(PY) -m ruff check captum_freqrex tests benchmarks scripts
	$(PY) -m mypy
	$(PY) -m pytest -q -x -p no:cacheprovider

docs: setup
	$(PY) -m sphinx -W --keep-going -b html docs docs/_build/html

bench: setup
	$(PY) benchmarks/perf.py
	$(PY) benchmarks/compare.py

clean:
	rm -rf docs/_build docs/jupyter_execute docs/tutorials .pytest_cache .mypy_cache .ruff_cache freqrex_out
