#!/usr/bin/env bash
# Passes `cargo test` output through and ends it with one plain closing line,
# "tests: N passed, N failed, N skipped", summed over every test binary (cargo's
# own last line belongs to whichever binary ran last, often an empty doctest).
set -uo pipefail
passed=0 failed=0 ignored=0
while IFS= read -r line; do
  printf '%s\n' "$line"
  if [[ $line =~ ^test\ result:.*\ ([0-9]+)\ passed\;\ ([0-9]+)\ failed\;\ ([0-9]+)\ ignored ]]; then
    passed=$((passed + BASH_REMATCH[1])); failed=$((failed + BASH_REMATCH[2])); ignored=$((ignored + BASH_REMATCH[3]))
  fi
done
echo
echo "tests: $passed passed, $failed failed, $ignored skipped"
