# mmprep developer entry points. `make quickstart` and `make test` work on a fresh
# machine with Python >= 3.10: they create .venv and install exactly the versions in
# constraints.txt (the lock), then check the environment with `mmprep doctor`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
EXTRAS ?= encoders,media,clip,test
LOCK ?= constraints.txt
comma := ,
STAMP := $(VENV)/.mmprep-$(subst $(comma),-,$(EXTRAS))
PYTEST_ARGS ?=
# the torch triple, also pinned in pyproject.toml (installed first so nothing else can
# pull in another torch build)
TORCH := torch==2.11.0 torchvision==0.26.0 torchaudio==2.11.0

.PHONY: quickstart test test-all lint doctor lock bench clean

$(STAMP): pyproject.toml $(LOCK)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=23.1"
	$(BIN)/python -m pip install --quiet -c $(LOCK) $(TORCH)
	$(BIN)/python -m pip install --quiet -c $(LOCK) -e ".[$(EXTRAS)]"
	touch $@

doctor: $(STAMP)
	$(BIN)/mmprep doctor

quickstart: $(STAMP)
	$(BIN)/mmprep doctor
	./examples/quickstart.sh

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-all: $(STAMP)
	$(BIN)/python -m pytest -m "" $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check mmprep tests examples

# Refresh the lock: resolve every extra in a throw-away virtualenv with an empty cache
# and write the exact versions it installed. Run it, then `make test`, then commit.
lock:
	rm -rf .venv-lock
	$(PYTHON) -m venv .venv-lock
	.venv-lock/bin/python -m pip install --quiet --upgrade "pip>=23.1"
	.venv-lock/bin/python -m pip install --quiet --no-cache-dir $(TORCH)
	.venv-lock/bin/python -m pip install --quiet --no-cache-dir -e ".[all]"
	{ echo "# mmprep's lock: the exact versions tested (CPython 3.11, Linux x86_64)."; \
	  echo "# Used as pip constraints by make quickstart / make test / .ci/run."; \
	  echo "# Refresh with: make lock (then make test). Generated $$(date -u +%F)."; \
	  .venv-lock/bin/python -m pip freeze --exclude-editable | LC_ALL=C sort -f; } > $(LOCK)
	rm -rf .venv-lock

clean:
	rm -rf demo build dist *.egg-info .pytest_cache .ruff_cache
