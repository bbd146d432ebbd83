#!/usr/bin/env bash
# `cargo lambda`, pinned: cargo-lambda is installed (once) from PyPI into a virtualenv under the
# user's cache directory, then run with these arguments. For example:
#
#   ./infra/cargo-lambda.sh build --release --arm64 -p riposte --bin riposte   # for a deployment
#   ./infra/cargo-lambda.sh watch --only-lambda-apis                           # the local emulator
#
# The build puts the binary at target/lambda/riposte/bootstrap, the file a provided.al2023 function runs.
set -euo pipefail

CARGO_LAMBDA_VERSION=1.9.2
venv="${XDG_CACHE_HOME:-$HOME/.cache}/riposte/cargo-lambda"
cargo_lambda="$venv/bin/cargo-lambda"

if [ ! -x "$cargo_lambda" ] || [ "$("$cargo_lambda" lambda --version 2>/dev/null | cut -d' ' -f2)" != "$CARGO_LAMBDA_VERSION" ]; then
    echo "== installing cargo-lambda $CARGO_LAMBDA_VERSION into $venv" >&2
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "cargo-lambda==$CARGO_LAMBDA_VERSION"
fi

exec "$cargo_lambda" lambda "$@"
