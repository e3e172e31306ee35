# trendgym — quick start: `make demo`, `make test`.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
COMPILED := $(VENV)/.compiled
KERNELS := $(shell find envs -name '*.py' 2>/dev/null)

.PHONY: demo test test-expensive test-browser test-ray bench lint docs compile clean clean-numba

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# torch first and pinned: the local CPU wheel; any other torch request pulls a multi-GB CUDA build.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

# numba compiles the envs' kernels on first use (minutes on a cold cache): pay it once,
# with a progress line per env, and again only when a file under envs/ changes
$(COMPILED): $(STAMP) $(KERNELS)
	$(BIN)/python -m trendgym.compile --vector --tape-tools
	touch $(COMPILED)

compile: $(COMPILED)

demo: $(COMPILED)
	$(BIN)/python -m trendgym.demo

test: $(COMPILED)
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

# the docs site (docs/, API pages from the docstrings); --strict: a warning fails the build
docs: $(STAMP)
	$(BIN)/python -m mkdocs build --strict --quiet

clean: clean-numba
	rm -rf $(VENV) .pytest_cache runs report site

# numba does not recompile a cached kernel when only a kernel it calls (in another file) changed
clean-numba:
	find . -path ./$(VENV) -prune -o \( -name '*.nbi' -o -name '*.nbc' \) -print | xargs rm -f
