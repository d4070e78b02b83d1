# mmprep developer entry points. `make quickstart` and `make test` work on a fresh
# machine with Python >= 3.10: they create .venv and install what they need.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
EXTRAS ?= encoders,media,clip,test
comma := ,
STAMP := $(VENV)/.mmprep-$(subst $(comma),-,$(EXTRAS))
PYTEST_ARGS ?=

.PHONY: quickstart test test-all lint bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[$(EXTRAS)]"
	touch $@

quickstart: $(STAMP)
	./examples/quickstart.sh

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-all: $(STAMP)
	$(BIN)/python -m pytest -m "" $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check mmprep tests

clean:
	rm -rf demo build dist *.egg-info .pytest_cache .ruff_cache
