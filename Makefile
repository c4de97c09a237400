# Two commands: `make lab` and `make test`. Both create .venv when missing and (re)install only
# when pyproject.toml or setup.py changed since the last install.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP_TEST := $(VENV)/.installed-test
STAMP_LAB  := $(VENV)/.installed-lab
STAMP_DOCS := $(VENV)/.installed-docs
PYTEST_ARGS ?=

.PHONY: test lab venv clean bench vectors chromium tshark typecheck fuzz docs

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

test: $(STAMP_TEST) chromium tshark
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

# tests/test_wireshark.py runs Debian's tshark (Wireshark 4.0 on Debian 12) with gbp.lua: as
# root, install it when missing; otherwise say what to install.
TSHARK := /usr/bin/tshark
tshark:
	@if [ ! -x $(TSHARK) ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    export DEBIAN_FRONTEND=noninteractive; \
	    apt-get install -y -q tshark || { apt-get update -q && apt-get install -y -q tshark; } || \
	      echo "WARNING: could not install tshark: run 'apt-get install -y tshark' as root"; \
	  else \
	    echo "NOTE: $(TSHARK) is missing; tests/test_wireshark.py needs it: run 'apt-get install -y tshark' as root"; \
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

# coverage-guided fuzzing (fuzz/run.py, issue 20): each harness FUZZ_RUNS inputs, niced; a table at the end.
# FUZZ_ARGS: e.g. FUZZ_ARGS='--max-time 600 frame capture'
FUZZ_RUNS ?= 1000000
FUZZ_ARGS ?=
STAMP_FUZZ := $(VENV)/.installed-fuzz
$(STAMP_FUZZ): pyproject.toml setup.py | $(PY)
	$(PY) -m pip install -q -e '.[test,fuzz]'
	touch $@
fuzz: $(STAMP_FUZZ)
	$(PY) fuzz/run.py --runs $(FUZZ_RUNS) $(FUZZ_ARGS)

# the documentation site into docs/_build/html (offline; warnings are errors: a broken
# cross-reference, a reference page out of step with the code, bad docstring markup)
docs: $(STAMP_DOCS)
	$(PY) -m sphinx -W --keep-going -q -b html docs docs/_build/html
