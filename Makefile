# Two commands set everything up (see README): `make example` and `make test`.
# Python 3.12 is required; PYTHON may be set to its path.
PYTHON ?= $(shell for p in python3.12 $$(pyenv root 2>/dev/null)/versions/3.12*/bin/python3.12; do \
	"$$p" -c 'import sys; assert sys.version_info[:2] == (3, 12)' 2>/dev/null && echo "$$p" && break; done)
VENV := .venv
BIN := $(VENV)/bin
EXAMPLE := build/example

.PHONY: install example test test-fast lint

$(BIN)/forecast: pyproject.toml
	@test -n "$(PYTHON)" || { echo "Python 3.12 not found: install it or run make PYTHON=/path/to/python3.12"; exit 1; }
	"$(PYTHON)" -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $@

install: $(BIN)/forecast

# The main job on the bundled example: a fresh example workspace, its priors checked against the
# model's prior, a fit every two months since the questions opened (one before the deadline of
# the questions "by 2026-06-30", so that they can be scored) up to the example's as-of date, the
# forecasts, their scores, a tournament file, and the report kept in reports/example/.
EXAMPLE_UPDATES := 2026-01-31 2026-03-31 2026-05-31 2026-07-31 2026-09-30 2026-11-22
example: install
	rm -rf $(EXAMPLE)
	$(BIN)/forecast --workspace $(EXAMPLE) init --example
	$(BIN)/forecast --workspace $(EXAMPLE) priors check --plot $(EXAMPLE)/priors-check.png
	for day in $(EXAMPLE_UPDATES); do echo "update --as-of $$day"; \
		$(BIN)/forecast --workspace $(EXAMPLE) update --as-of $$day >/dev/null || exit 1; done
	$(BIN)/forecast --workspace $(EXAMPLE) show
	$(BIN)/forecast --workspace $(EXAMPLE) score
	$(BIN)/forecast --workspace $(EXAMPLE) submit --platform metaculus --out $(EXAMPLE)/metaculus.json
	$(BIN)/forecast --workspace $(EXAMPLE) report --out reports/example

# Two workers (the machine's two cores), each test file in one of them, so that a file's shared
# fitted workspace is made once; the fits' chains and the many single-threaded tests share the
# cores (5:59 in one process, 4:47 in two, on 2 cores).
XDIST := -n 2 --dist loadfile

test: install
	$(BIN)/pytest $(XDIST) --durations=20

# the edit-test loop: no MCMC fits, no subprocesses (tests marked slow)
test-fast: install
	$(BIN)/pytest $(XDIST) -q -m "not slow"

lint: install
	$(BIN)/ruff check . && $(BIN)/mypy
