#!/usr/bin/env bash
# Coverage-guided fuzzing of what riposte parses from strangers (fuzz/: the Falco, Monitoring and
# Pub/Sub parsers, the policy decoder, the approval-link verifier) with cargo-fuzz and libFuzzer.
#
#   ./infra/fuzz.sh                 # every target for 10 s (what ./infra/test.sh runs)
#   ./infra/fuzz.sh 600 pubsub      # one target for 10 minutes: a longer campaign
#
# cargo-fuzz is installed, pinned, into ~/.cache/riposte/cargo-fuzz on first use. The machine's
# stable toolchain builds the targets (RUSTC_BOOTSTRAP lets it take libFuzzer's instrumentation
# flags); no sanitizer, as riposte forbids unsafe code. Each corpus (fuzz/corpus/TARGET, kept
# between runs, not committed) starts from the fixtures of tests/fixtures and the example policy.
# A crash, a leak past the RSS limit or a timeout fails the run and leaves the input under
# fuzz/artifacts/TARGET/: reproduce it with `./infra/fuzz.sh repro TARGET FILE`, then make it a
# regression test next to the parser (docs/FUZZING.md).
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO_FUZZ_VERSION=0.13.1
root="${XDG_CACHE_HOME:-$HOME/.cache}/riposte/cargo-fuzz"
cargo_fuzz="$root/bin/cargo-fuzz"
if [ ! -x "$cargo_fuzz" ] || [ "$("$cargo_fuzz" --version | cut -d' ' -f2)" != "$CARGO_FUZZ_VERSION" ]; then
  echo "== installing cargo-fuzz $CARGO_FUZZ_VERSION into $root" >&2
  cargo install --quiet --locked "cargo-fuzz@$CARGO_FUZZ_VERSION" --root "$root"
fi
export RUSTC_BOOTSTRAP=1
fuzz() { local command=$1; shift; "$cargo_fuzz" fuzz "$command" --sanitizer none "$@"; }

targets_all=(falco monitoring pubsub policy approval_token)

if [ "${1:-}" = "repro" ]; then
  fuzz run "$2" "$3"
  exit
fi
seconds="${1:-10}"
shift || true
targets=("${@:-${targets_all[@]}}")

seed() {
  local target=$1 corpus=fuzz/corpus/$1
  mkdir -p "$corpus"
  case "$target" in
    falco | monitoring | pubsub) cp tests/fixtures/"$target"/*.json "$corpus"/ ;;
    policy) cp infra/examples/policy.yaml "$corpus"/ ;;
    approval_token) : > "$corpus/genuine" ;;
  esac
}

log="$(mktemp)"
if ! fuzz build >"$log" 2>&1; then
  cat "$log" >&2
  exit 1
fi
rm -f "$log"
for target in "${targets[@]}"; do
  seed "$target"
  mkdir -p "fuzz/artifacts/$target"
  echo "== fuzzing $target for ${seconds}s"
  fuzz run "$target" "fuzz/corpus/$target" -- \
    -max_total_time="$seconds" -max_len=65536 -rss_limit_mb=1024 -timeout=10 \
    -artifact_prefix="fuzz/artifacts/$target/" -print_final_stats=1 2>&1 |
    grep -E '^(stat::number_of_executed_units|stat::peak_rss_mb|Done |==[0-9]+== ERROR|SUMMARY|thread .* panicked|.*deadly signal|.*Test unit written)' || true
  # libFuzzer's exit code is lost in the pipe: a crash leaves an artifact.
  if compgen -G "fuzz/artifacts/$target/*" >/dev/null; then
    echo "fuzzing $target found a failing input: $(ls fuzz/artifacts/"$target"/*)" >&2
    exit 1
  fi
done
