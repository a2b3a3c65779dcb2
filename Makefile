# The two commands of the README:
#   make run    set up, build the demo data + checkpoints if missing, open the dashboard
#   make test   set up, then run the whole test suite
# Everything lives in .venv inside the repository.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: run setup demo test test-fast system-deps lint bench clean-demo

run: demo
	$(PY) -m streamlit run dashboard/app.py

setup: $(VENV)/.installed

$(VENV)/.installed: requirements.txt requirements-nodeps.txt pyproject.toml
	@echo ">> creating $(VENV) and installing requirements (first run only)"
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --disable-pip-version-check -q -r requirements.txt
	$(VENV)/bin/pip install --disable-pip-version-check -q --no-deps -r requirements-nodeps.txt
	$(VENV)/bin/pip install --disable-pip-version-check -q --no-deps --no-build-isolation -e .
	@touch $@

demo: setup
	$(PY) -m core demo

system-deps:
	bash scripts/install_system_deps.sh

test: setup system-deps
	$(PY) -m pytest

test-fast: setup
	$(PY) -m pytest -m "not browser and not slow"

lint: setup
	$(PY) -m ruff check core dashboard pages bench tests

bench: demo
	$(PY) -m bench all --json bench.json

clean-demo:
	rm -rf demo_data checkpoints .cache
