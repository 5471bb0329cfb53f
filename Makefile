# confiance-job: the template's own commands.
#   make job     generate a job repo next to this folder (ARGS: cookiecutter's options and answers,
#                e.g. ARGS='--no-input project_name="Air Quality" steps=prepare,train'; OUTPUT_DIR=.. by default)
#   make test    run the whole test suite (it ends with its 15 slowest steps)
#   make bench   measure against the platform's hand-made template
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
ARGS ?=
OUTPUT_DIR ?= ..
PYTEST_ARGS ?= -n auto --dist loadgroup --durations=15
BENCH_ARGS ?=

# Answers come after the template's folder; the job repo goes outside this checkout (a repo of its own).
job: $(BIN)/cookiecutter
	$(BIN)/cookiecutter . --output-dir $(OUTPUT_DIR) $(ARGS)

test: $(BIN)/cookiecutter
	$(BIN)/pytest $(PYTEST_ARGS)

# The hooks hold Jinja, which the formatter would rewrite: they are checked, not formatted.
lint: $(BIN)/cookiecutter
	$(BIN)/ruff check tests bench package hooks local_extensions.py && $(BIN)/ruff format --check tests bench package local_extensions.py

bench: $(BIN)/cookiecutter
	$(BIN)/python bench/run.py $(BENCH_ARGS)

$(BIN)/cookiecutter: requirements-dev.txt package/src/confiance_job/tools.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@

.PHONY: job test lint bench
