# 热线智能助手: `make run` and `make test` set themselves up on first use.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV      := .venv
PY        := $(VENV)/bin/python
STAMP     := $(VENV)/.installed
PORT      ?= 8000
# Python 3.11 for the core: on PATH, else under pyenv.
PYTHON311 ?= $(shell command -v python3.11 2>/dev/null || ls -d $$HOME/.pyenv/versions/3.11*/bin/python 2>/dev/null | tail -n 1)
export HOTLINE_DATA_DIR ?= ./var
export PIP_DISABLE_PIP_VERSION_CHECK := 1
TEST_PG_URL ?= postgresql://postgres@127.0.0.1:5432/test

.PHONY: help setup run test bench lint clean

help:
	@echo "make run    — set up on first use, start the API on http://127.0.0.1:$(PORT) (SQLite under var/)"
	@echo "make test   — set up on first use, run every test (SQLite and PostgreSQL)"
	@echo "make bench  — search quality and speed figures as JSON lines"
	@echo "make lint   — ruff"

$(PY):
	@if [ -z "$(PYTHON311)" ]; then \
	  echo "需要 Python 3.11（未在 PATH 或 ~/.pyenv 中找到）。请安装，例如：pyenv install 3.11 或 apt-get install python3.11 python3.11-venv" >&2; exit 1; fi
	$(PYTHON311) -m venv $(VENV)

# torch first and pinned: a looser spec, or a package asking for torch, would pull GBs of CUDA builds.
$(STAMP): $(PY) requirements.txt requirements-dev.txt pyproject.toml
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -r requirements.txt -r requirements-dev.txt
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	@touch $(STAMP)

setup: $(STAMP)

run: $(STAMP)
	HF_HUB_OFFLINE=1 $(VENV)/bin/hotline serve --port $(PORT)

# pytest exit 5 means no test was collected: that is a failure here, never a silent pass.
test: $(STAMP)
	@HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HOTLINE_TEST_PG_URL=$(TEST_PG_URL) $(PY) -m pytest $(PYTEST_ARGS); \
	  rc=$$?; if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing" >&2; exit 1; fi; exit $$rc

bench: $(STAMP)
	HF_HUB_OFFLINE=1 $(PY) -m bench.run $(BENCH_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check kb api tests bench

clean:
	rm -rf $(VENV) var .pytest_cache
