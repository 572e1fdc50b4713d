# lien: the two commands a newcomer needs are `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
DATA   ?= ../shared/data/chat-eval
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: demo test lint unit eval guard-eval bench report-sample clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# Reinstall whenever pyproject.toml changes.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[dev]'
	touch $@ $(VENV)/.installed

demo: $(VENV)/.installed
	$(BIN)/lien demo

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/lint-imports

test: lint
	$(BIN)/pytest -q -p no:cacheprovider

unit: $(VENV)/.installed-dev
	$(BIN)/pytest -q tests/unit

eval: $(VENV)/.installed
	$(BIN)/lien eval --data $(DATA)

guard-eval: $(VENV)/.installed
	$(BIN)/python -m bench.guard_eval --data $(DATA) --spread

bench: $(VENV)/.installed-dev
	$(BIN)/python -m bench

# A report of real chat (Gitter rooms) for a person to look at: out/report-gitter.html
report-sample: $(VENV)/.installed
	mkdir -p out
	$(BIN)/lien report $(DATA)/gitter/events.jsonl --out out/report-gitter.html

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis lien-demo.db*
