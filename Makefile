# ivz-bridge: `make run` serves the FHIR API with demo data; `make test` runs every check.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
HOST ?= 127.0.0.1
PORT ?= 8080
CODE := $(wildcard fhir_server adapters tests bench tools)

.PHONY: install run test lint format bench clean

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) not found: install Python 3.11" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# ivz demo seeds the teams and runs the synthetic cohort once (a second run only reports);
# should it fail, the server still starts ("-": make goes on after reporting the error).
run: install
	$(BIN)/ivz db upgrade
	-$(BIN)/ivz demo
	IVZ_AUTH=off $(BIN)/ivz serve --host $(HOST) --port $(PORT)

lint: install
	$(BIN)/ruff check $(CODE)
	$(BIN)/ruff format --check $(CODE)
	$(BIN)/mypy fhir_server adapters

format: install
	$(BIN)/ruff format $(CODE)
	$(BIN)/ruff check --fix $(CODE)

test: lint
	$(BIN)/pytest -n auto -q

bench: install
	$(BIN)/python -m bench.run

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .mypy_cache .ruff_cache
