# Every target sets itself up from a fresh clone: a .venv, the project and its
# dev extras, and Debian's chromium for the browser tests.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run demo test test-fast bench lint contract clean chromium

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing Debian's chromium for the browser tests"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

run: $(STAMP)
	mkdir -p data
	$(BIN)/hashtag-monitor db upgrade
	$(BIN)/hashtag-monitor run

# Training mode: the whole product on a built-in sample, offline; Ctrl-C removes it all.
# `make demo PORT=8080` serves it on another port (0 picks a free one).
PORT ?= 8000
demo: $(STAMP)
	$(BIN)/hashtag-monitor demo --port $(PORT)

# -rfE: a failing run ends with the names of the tests that failed or errored.
# -n 2: two pytest-xdist workers. Most tests wait on a database, a local server or a
# browser, so two at a time halve the run; every test has its own database and port.
test: $(STAMP) chromium
	$(BIN)/python -m pytest -q -p no:cacheprovider -rfE -n 2

# The inner loop: everything but child processes, the whole service and the browser.
test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider -rfE -n 2 -m "not slow"

bench: $(STAMP)
	@for script in benchmarks/bench_*.py; do \
	  $(BIN)/python -m benchmarks.$$(basename $$script .py) || exit 1; done

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy --strict adapters monitor

contract: $(STAMP)
	$(BIN)/python ../shared/tools/check-contract

clean:
	rm -rf $(VENV) build dist
