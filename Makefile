# Two commands do all set-up on a fresh machine:
#   make demo   -- the main job: the demo pipeline and a provenance-tracked study on
#                  generated data (creates an embedded SQLite AiiDA profile when none exists)
#   make test   -- install what the tests need and run them (SQLite, PostgreSQL, daemon)
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-dev
STAMP_RUN := $(VENV)/.installed-run

.PHONY: demo test bench venv clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(STAMP_RUN): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e .
	touch $@

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e ".[dev,bench,qe,repr]"
	touch $@ $(STAMP_RUN)

venv: $(STAMP)

demo: $(STAMP_RUN)
	PATH="$(abspath $(VENV))/bin:$$PATH" $(VENV)/bin/crystinv demo
	PATH="$(abspath $(VENV))/bin:$$PATH" $(VENV)/bin/crystinv study run examples/study_ewald.yaml

test: $(STAMP)
	PATH="$(abspath $(VENV))/bin:$$PATH" bash tests/run_all.sh $(PY)

bench: $(STAMP)
	$(PY) benchmarks/bench_invariants.py

clean:
	rm -rf $(VENV) .pytest_cache
