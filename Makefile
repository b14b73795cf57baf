# Two commands do everything on a fresh machine: `make demo` and `make test`.
# Both create .venv when it is missing and install rlgrad into it (editable, with test extras).
# `make test` also builds this documentation site (`make docs`, strict) and checks the installs
# a user makes (tests/installs/check.sh: core, [gym], [ray], [lm], each in a fresh venv from a
# wheel of the checkout); `make test-fast` is the edit-test loop: the suite without its slow tests
# and without the installs.
#
# PyTorch is installed first, from TORCH_SPEC. The default pins the CPU build that these machines
# carry; elsewhere override it, e.g.
#   make test TORCH_SPEC="torch --index-url https://download.pytorch.org/whl/cpu"
#   make test TORCH_SPEC=torch          # your platform's default build (CUDA on Linux)

PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
BIN := $(VENV)/bin
STAMP := $(VENV)/.rlgrad-installed

.PHONY: demo test test-fast test-installs lint docs bench bench-sb3 bench-trl clean

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH_SPEC)
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

# The main job: PPO solves CartPole-v1, with a progress bar, a summary and runs/*/learning_curve.png.
demo: $(STAMP)
	$(BIN)/rlgrad train ppo --env CartPole-v1

lint: $(STAMP)
	$(BIN)/ruff check rlgrad tests benchmarks docs/*.py
	$(BIN)/ruff format --check rlgrad tests benchmarks docs/*.py

# The documentation site into site/ (`rlgrad docs` serves it). --strict: a broken link, a missing
# reference or a docstring the parser cannot read fails the build.
docs: $(STAMP)
	$(BIN)/mkdocs build --strict

# --durations: the slowest tests in every run, so that a test that grew slow is seen
test: $(STAMP) lint docs
	$(BIN)/python -m pytest --durations=15
	$(MAKE) test-installs

test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow" --durations=10

test-installs:
	PYTHON=$(PYTHON) TORCH_SPEC="$(TORCH_SPEC)" tests/installs/check.sh

bench: $(STAMP)
	$(BIN)/python benchmarks/gae.py

# rlgrad against Stable-Baselines3, interleaved (installs the `bench` extra; ~1 hour on 2 cores).
bench-sb3: $(STAMP)
	$(BIN)/python -m pip install --quiet -e ".[bench]"
	$(BIN)/python benchmarks/vs_sb3.py

# rlgrad's GRPOTrainer against TRL's on the grpo-demo task, interleaved, 3 seeds.
bench-trl: $(STAMP)
	$(BIN)/python -m pip install --quiet -e ".[bench]"
	$(BIN)/python benchmarks/vs_trl.py

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis build site *.egg-info
