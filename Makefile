# Tuan: `make run` starts the bot (SQLite, polling); `make test` runs the whole suite.
# Both do all set-up first: virtual environment, pinned install, catalogs, migrations.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test setup migrate lint locales-extract locales-update locales-compile bench clean

$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is required")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev]"
	touch $(STAMP)

setup: $(STAMP) locales-compile

run: setup
	$(BIN)/python -m bot run

test: setup
	$(BIN)/python -m tests.run $(PYTEST_ARGS)

migrate: setup
	$(BIN)/python -m bot migrate

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/hadolint Dockerfile

locales-extract: $(STAMP)
	$(BIN)/pybabel extract -k _ -k __ -k N_ -k ngettext:1,2 --no-location --sort-output \
		--project=tuan -o locales/messages.pot bot handlers views services scheduler

locales-update: locales-extract
	$(BIN)/pybabel update -d locales -D messages -i locales/messages.pot --no-fuzzy-matching --ignore-obsolete

locales-compile: $(STAMP)
	$(BIN)/pybabel compile -d locales -D messages --statistics

bench: setup
	$(BIN)/python -m bench $(BENCH)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
