# Two commands: `make lab` and `make test`. Both create .venv when missing and (re)install only
# when pyproject.toml or setup.py changed since the last install.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP_TEST := $(VENV)/.installed-test
STAMP_LAB  := $(VENV)/.installed-lab
STAMP_DOCS := $(VENV)/.installed-docs
PYTEST_ARGS ?=

.PHONY: test lab venv clean bench vectors chromium typecheck docs

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(STAMP_TEST): pyproject.toml setup.py | $(PY)
	$(PY) -m pip install -q -e '.[test]'
	touch $@

$(STAMP_LAB): pyproject.toml setup.py | $(PY)
	$(PY) -m pip install -q -e '.[lab]'
	touch $@

$(STAMP_DOCS): pyproject.toml setup.py | $(PY)
	$(PY) -m pip install -q -e '.[test,docs]'
	touch $@

test: $(STAMP_TEST) chromium
	$(VENV)/bin/mypy
	$(PY) -m pytest -n auto $(PYTEST_ARGS)

# tests/test_browser.py drives Debian's Chromium (never `playwright install`): as root, install it
# when missing; otherwise say what to install and go on (that one test then fails and says so).
CHROMIUM := /usr/bin/chromium
chromium:
	@if [ ! -x $(CHROMIUM) ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    export DEBIAN_FRONTEND=noninteractive; \
	    apt-get install -y -q chromium || { apt-get update -q && apt-get install -y -q chromium; } || \
	      echo "WARNING: could not install chromium: run 'apt-get install -y chromium' as root"; \
	  else \
	    echo "NOTE: $(CHROMIUM) is missing; tests/test_browser.py needs it: run 'apt-get install -y chromium' as root"; \
	  fi; \
	fi

# JupyterLab on the checkout's notebooks, opening 02 (as root too; headless prints the URL).
# Extra arguments for `jupyter lab`: make lab LAB_ARGS='--port=9999'
lab: $(STAMP_LAB)
	$(VENV)/bin/gbp-lab lab -- $(LAB_ARGS)

bench: $(STAMP_TEST)
	for b in benchmarks/*_bench.py; do $(PY) $$b || exit 1; done

vectors: $(STAMP_TEST)
	$(PY) -m gbp_lab.core.mls.vectors tests/vectors/mls/*.json*

clean:
	rm -rf $(VENV) build dist *.egg-info

# mypy over gbp_lab, gbp_lab.core and gbp_lab.dissectors (configuration in pyproject.toml)
typecheck: $(STAMP_TEST)
	$(VENV)/bin/mypy

# the documentation site into docs/_build/html (offline; warnings are errors: a broken
# cross-reference, a reference page out of step with the code, bad docstring markup)
docs: $(STAMP_DOCS)
	$(PY) -m sphinx -W --keep-going -q -b html docs docs/_build/html
