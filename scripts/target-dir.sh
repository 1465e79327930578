#!/usr/bin/env bash
# Prints the absolute folder cargo builds into for this workspace: what
# `cargo metadata` reports, so $CARGO_TARGET_DIR (relative or absolute),
# `build.target-dir` in a .cargo/config.toml and the default `target/` all
# give the folder where the binaries really are. The Makefile and
# scripts/demo.sh find the binaries they run under it.
#   scripts/target-dir.sh            the target folder
#   scripts/target-dir.sh release    its release profile folder (…/release)
set -euo pipefail
cd "$(dirname "$0")/.."
dir=$(${CARGO:-cargo} metadata --format-version 1 --no-deps --offline 2>/dev/null \
  | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])') \
  || { echo "target-dir: cargo metadata failed" >&2; exit 1; }
if [ $# -gt 0 ]; then echo "$dir/$1"; else echo "$dir"; fi
