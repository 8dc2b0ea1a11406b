# Two entry points, each installs what it needs into a local virtual environment.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test test-slow docs install clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $@

install: $(VENV)/.installed

demo: $(VENV)/.installed
	$(BIN)/bayes-scaling demo --out demo_output

# unit tests and small end-to-end fits (7 minutes with the install on a new machine with 2 cores, numba
# compiling each model structure's operations once), one worker per core, each test file in one
# worker (its fixtures built once): a fit compiles on one core while another samples
test: $(VENV)/.installed
	$(BIN)/python -m pytest -q -m "not slow" -n auto --dist loadfile --durations=15

# the slower end-to-end tests on real data, the notebooks and the command line in new processes (CI runs both)
test-slow: $(VENV)/.installed
	$(BIN)/python -m pytest -q -m slow --durations=15

# the documentation site (mkdocs-material + mkdocstrings), warnings are errors
docs: $(VENV)/.installed
	$(BIN)/python -m pip install --quiet -e ".[docs]"
	$(BIN)/mkdocs build --strict --site-dir site

clean:
	rm -rf $(VENV) demo_output site
