# Spool: `make run` starts Spool on its embedded default; `make test` runs
# every test. Both install what they need first (scripts/setup.sh).

SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
CARGO ?= cargo
SPOOL_DATA ?= .spool/data
SPOOL_LISTEN ?= 127.0.0.1:8080

.PHONY: run test setup lint build bench clean

setup:
	@scripts/setup.sh all

build:
	$(CARGO) build --locked -p spool-cli

## The main job: the upload server on local disk + SQLite, credentials
## generated on first start and printed, with a curl walkthrough.
run:
	@scripts/setup.sh system
	$(CARGO) build --locked --release -p spool-cli
	./target/release/spool serve --listen $(SPOOL_LISTEN) --data $(SPOOL_DATA)

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --locked --workspace --all-targets -- -D warnings

## Every test: formatting and lints, unit and protocol tests, end-to-end
## suites against real third-party peers.
test: setup lint build
	$(CARGO) test --locked --workspace --no-fail-fast 2>&1 | scripts/test-summary.sh

## Benchmarks that print figures (see README, Performance).
bench: setup
	$(CARGO) build --locked --release -p spool-cli
	SPOOL_BIN=$(CURDIR)/target/release/spool $(CARGO) bench --locked -p spool-e2e

clean:
	$(CARGO) clean
