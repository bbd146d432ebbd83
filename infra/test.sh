#!/usr/bin/env bash
# The whole test suite, on a fresh machine: installs and starts what the tests need, then runs
# every test of the workspace. Extra arguments go to `cargo test` (e.g. a test name filter).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null 2>&1; then
  echo "cargo is required: install Rust (rustup) first" >&2
  exit 1
fi

# Nothing beyond Rust is needed yet: the embedded store, the router and the real binary run
# in-process or on loopback. Emulators and Chromium join here with the issues that need them.
cargo test --workspace --locked "$@"
