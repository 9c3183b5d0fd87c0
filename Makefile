# Portico: `make run` serves the embedded default, `make test` runs the suite.
PYTHON ?= python3
HOST ?= 127.0.0.1
PORT ?= 5000
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
FLASK := PORTICO_ENV=development $(BIN)/flask --app wsgi

.PHONY: run reset-demo test lint install clean translations messages bench topology

# German (and any later) catalogues: .po files are the source, .mo files are built.
PO_FILES := $(wildcard portal_app/translations/*/LC_MESSAGES/messages.po)
MO_FILES := $(PO_FILES:.po=.mo)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP) translations

translations: $(MO_FILES)

portal_app/translations/%/LC_MESSAGES/messages.mo: portal_app/translations/%/LC_MESSAGES/messages.po $(STAMP)
	$(BIN)/pybabel compile -i $< -o $@ -l $*

# After changing portal text: re-extract, merge into every catalogue, then translate the new entries.
messages: $(STAMP)
	$(BIN)/pybabel extract -F babel.cfg -k _l -k lazy_gettext --no-location --sort-output \
	  --project Portico --copyright-holder Portico -o portal_app/translations/messages.pot .
	$(BIN)/pybabel update -i portal_app/translations/messages.pot -d portal_app/translations --no-fuzzy-matching

run: $(STAMP) translations
	$(FLASK) db upgrade
	BASE_URL=$${BASE_URL:-http://localhost:$(PORT)} $(FLASK) demo load
	BASE_URL=$${BASE_URL:-http://localhost:$(PORT)} $(FLASK) run --host $(HOST) --port $(PORT)

# Start the demo over: the embedded database, its mail and its files go; .venv stays.
reset-demo:
	rm -rf instance/portico.db instance/mail instance/documents
	@echo "Demo data removed; 'make run' loads the demo firm afresh."

test: $(STAMP) translations
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Every benchmark in bench/ (PostgreSQL and Redis on this machine, gunicorn, wrk); one table at the end.
bench: $(STAMP) translations
	$(BIN)/python bench/run_all.py $(BENCH_ARGS)

# The multi-host layout of docs/deploy.md on this machine, driven under SIGKILL faults (R-OPS-7).
# Needs Debian's nginx, pgbouncer, redis-server and PostgreSQL's server programs; about 8 minutes.
topology: $(STAMP) translations
	$(BIN)/python deploy/topology/run.py $(TOPOLOGY_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) instance .pytest_cache
