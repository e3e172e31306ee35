# trendgym — quick start: `make demo`, `make test`.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed

.PHONY: demo test test-expensive test-browser test-ray bench lint clean clean-numba

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# torch first and pinned: the local CPU wheel; any other torch request pulls a multi-GB CUDA build.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m trendgym.demo

test: $(STAMP)
	$(BIN)/python -m pytest -q

test-expensive: $(STAMP)
	$(BIN)/python -m pytest -q -m expensive

# renders the HTML report in headless Chromium (Debian's package; installed when missing)
test-browser: $(STAMP)
	command -v chromium >/dev/null || (apt-get update && apt-get install -y chromium)
	$(BIN)/python -m pytest -q -m browser

# the walk-forward runner on a local Ray instance, against the local backend
test-ray: $(STAMP)
	$(BIN)/pip install --quiet -e ".[ray]"
	$(BIN)/python -m pytest -q -m ray

bench: $(STAMP)
	@for b in benchmarks/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean: clean-numba
	rm -rf $(VENV) .pytest_cache runs report

# numba does not recompile a cached kernel when only a kernel it calls (in another file) changed
clean-numba:
	find . -path ./$(VENV) -prune -o \( -name '*.nbi' -o -name '*.nbc' \) -print | xargs rm -f
