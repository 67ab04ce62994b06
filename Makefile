# 热线智能助手: `make run` and `make test` set themselves up on first use.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV      := .venv
PY        := $(VENV)/bin/python
STAMP     := $(VENV)/.installed
BOT_VENV  := .venv-bot
BOT_PY    := $(BOT_VENV)/bin/python
BOT_STAMP := $(BOT_VENV)/.installed
WEB_STAMP := api/web/node_modules/.installed
MODEL_STAMP := var/models/.trained
PORT      ?= 8000
# Python 3.11 for the core, 3.10 for Rasa 3.6 (it supports 3.8–3.10 only): on PATH, else under pyenv.
# Each candidate must actually run: a pyenv shim is on PATH even when that version is not selected.
find_python = $(shell for p in $$(command -v python$(1) 2>/dev/null) $$(ls -d $$HOME/.pyenv/versions/$(1).*/bin/python 2>/dev/null | sort -V | tail -n 1); do \
  "$$p" -c 'import sys; assert "%d.%d" % sys.version_info[:2] == "$(1)"' 2>/dev/null && { echo "$$p"; break; }; done)
PYTHON311 ?= $(call find_python,3.11)
PYTHON310 ?= $(call find_python,3.10)
export HOTLINE_DATA_DIR ?= ./var
export PIP_DISABLE_PIP_VERSION_CHECK := 1
export TF_CPP_MIN_LOG_LEVEL := 2
export SQLALCHEMY_SILENCE_UBER_WARNING := 1
TEST_PG_URL ?= postgresql://postgres@127.0.0.1:5432/test
BOT_DATA := config.yml bot/domain.yml $(shell find nlu_data kb/data/jieba -type f -name '*.yml' -o -type f -name '*.txt' 2>/dev/null)
RASA := PYTHONPATH=$(CURDIR) $(BOT_VENV)/bin/rasa

.PHONY: help setup run test test-core test-bot bench lint train validate clean

help:
	@echo "make run    — set up on first use, train the bot if its data changed, start API + actions + Rasa"
	@echo "make test   — set up on first use, run every test (SQLite and PostgreSQL, the bot, end to end)"
	@echo "make bench  — search, intake and bot figures as JSON lines"
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

$(BOT_PY):
	@if [ -z "$(PYTHON310)" ]; then \
	  echo "需要 Python 3.10 运行 Rasa 3.6（它只支持 3.8–3.10），未在 PATH 或 ~/.pyenv 中找到。" >&2; \
	  echo "请安装，例如：pyenv install 3.10.13 或 apt-get install python3.10 python3.10-venv" >&2; exit 1; fi
	$(PYTHON310) -m venv $(BOT_VENV)

# The constraints file is a freeze of a working install: Rasa's own dependency ranges are wide and old.
$(BOT_STAMP): $(BOT_PY) bot/requirements.txt bot/requirements-dev.txt bot/constraints.txt
	$(BOT_PY) -m pip install -q --upgrade pip
	$(BOT_PY) -m pip install -q -r bot/requirements.txt -r bot/requirements-dev.txt -c bot/constraints.txt
	@touch $(BOT_STAMP)

# The web chat page's socket.io client comes from the npm registry, pinned by package-lock.json.
$(WEB_STAMP): api/web/package.json api/web/package-lock.json
	cd api/web && npm ci --no-audit --no-fund --silent
	@touch $(WEB_STAMP)

# Browser tests drive Debian's chromium through Playwright; no browser is ever downloaded.
CHROMIUM := /usr/bin/chromium
$(CHROMIUM):
	@echo "安装浏览器测试所需的 Debian chromium…"
	@if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo -n"; fi; \
	  { $$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q chromium; } >/dev/null \
	  || { echo "需要 Debian 的 chromium 包：请运行 apt-get install chromium" >&2; exit 1; }

setup: $(STAMP) $(BOT_STAMP) $(WEB_STAMP)

validate: $(BOT_STAMP)
	$(RASA) data validate --fail-on-warnings --domain bot/domain.yml --data nlu_data --config config.yml

# Retrained only when the training data, domain, config or dictionary changed.
$(MODEL_STAMP): $(BOT_STAMP) $(BOT_DATA)
	@mkdir -p var/models
	$(RASA) data validate --fail-on-warnings --domain bot/domain.yml --data nlu_data --config config.yml > var/models/validate.log 2>&1 || { cat var/models/validate.log; exit 1; }
	@start=$$(date +%s); \
	$(RASA) train --domain bot/domain.yml --data nlu_data --config config.yml --out var/models --fixed-model-name hotline > var/models/train.log 2>&1 || { tail -50 var/models/train.log; exit 1; }; \
	echo "{\"bench\": \"rasa_train\", \"seconds\": $$(( $$(date +%s) - start ))}" | tee var/models/train_time.json
	@touch $(MODEL_STAMP)

train: $(MODEL_STAMP)

run: setup train
	HF_HUB_OFFLINE=1 PORT=$(PORT) $(PY) -m tools.stack

# pytest exit 5 means no test was collected: that is a failure here, never a silent pass.
test: test-core test-bot

test-core: $(STAMP) $(BOT_STAMP) $(WEB_STAMP) $(MODEL_STAMP) $(CHROMIUM)
	@HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HOTLINE_TEST_PG_URL=$(TEST_PG_URL) $(PY) -m pytest --ignore=tests/actions --ignore=tests/bot $(PYTEST_ARGS); \
	  rc=$$?; if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing" >&2; exit 1; fi; exit $$rc

# Action and channel unit tests, then Rasa's own evaluation: held-out NLU file and the test stories.
test-bot: $(BOT_STAMP) $(MODEL_STAMP)
	@PYTHONPATH=$(CURDIR) $(BOT_PY) -m pytest -p no:cacheprovider --confcutdir=tests/actions tests/actions tests/bot $(PYTEST_ARGS); \
	  rc=$$?; if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing" >&2; exit 1; fi; exit $$rc
	$(RASA) test core --model var/models/hotline.tar.gz --stories tests/bot/test_stories.yml --out var/results/core --fail-on-prediction-errors > var/models/test_core.log 2>&1 || { tail -40 var/models/test_core.log; cat var/results/core/failed_test_stories.yml 2>/dev/null; exit 1; }
	@echo "rasa test core: $$(grep -c '^- story:' tests/bot/test_stories.yml) test stories passed"
	$(RASA) test nlu --model var/models/hotline.tar.gz --nlu tests/bot/nlu_test.yml --out var/results/nlu --successes > var/models/test_nlu.log 2>&1 || { tail -40 var/models/test_nlu.log; exit 1; }
	$(PY) -m tools.nlu_report var/results/nlu --min-macro-f1 0.90

bench: setup train
	HF_HUB_OFFLINE=1 $(PY) -m bench.run $(BENCH_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check kb api tests bench tools actions bot

clean:
	rm -rf $(VENV) $(BOT_VENV) var .pytest_cache api/web/node_modules
