#!/usr/bin/env bash
# Measures the container image as the test suite builds it (infra/Dockerfile on the Debian 12
# stand-in for distroless, with the binary of `cargo build --profile image`) and prints a markdown
# table for BENCHMARKS.md:
#
#   ./infra/container/bench.sh [RUNS]     # RUNS cold starts each (default 10)
#
# Sizes: the image as podman stores it (uncompressed) and as `podman save | gzip -6` (about what a
# registry stores: gzip-compressed layers); the binary with and without its symbol table (the
# `release` and `image` profiles, the same build otherwise). Cold start: from `podman start` of a
# created container, and from exec of the same binary outside any container, to the first
# `GET /healthz` that answers 200 (polled every 2 ms), median and worst of RUNS; idle RSS of the
# server after its first /healthz.
set -euo pipefail
cd "$(dirname "$0")/../.."
runs="${1:-10}"
export CONTAINERS_CONF="$PWD/infra/container/containers.conf"
image=localhost/riposte:bench

cargo build --profile image -p riposte --locked --quiet
cargo build --release -p riposte --locked --quiet
base="$(./infra/container/distroless-standin.sh)"
podman build --quiet --file infra/Dockerfile --build-arg BINARY_FROM=prebuilt \
  --build-arg "RUNTIME_IMAGE=$base" --tag "$image" . >/dev/null

now_us() { echo $(( $(date +%s%N) / 1000 )); }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_healthy() { until curl -fs -o /dev/null "http://127.0.0.1:$1/healthz"; do sleep 0.002; done; }
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
# Median and maximum of the numbers on stdin, in ms with one decimal.
summary() { sort -n | awk '{v[NR]=$1} END {printf "%.1f ms (worst %.1f ms)", v[int((NR+1)/2)]/1000, v[NR]/1000}'; }

container_starts=() container_rss=0
for _ in $(seq "$runs"); do
  port="$(free_port)"
  name="riposte-bench-$$"
  podman create --name "$name" --network=host --env "PORT=$port" "$image" >/dev/null
  t0="$(now_us)"; podman start "$name" >/dev/null; wait_healthy "$port"; t1="$(now_us)"
  container_starts+=("$((t1 - t0))")
  container_rss="$(rss_kib "$(podman inspect --format '{{.State.Pid}}' "$name")")"
  podman rm --force --time=0 "$name" >/dev/null
done

host_starts=() host_rss=0
for _ in $(seq "$runs"); do
  port="$(free_port)"; state="$(mktemp -d)"
  t0="$(now_us)"
  PORT="$port" RIPOSTE_LOG=warn target/image/riposte serve --state-dir "$state" >/dev/null 2>&1 &
  pid=$!; wait_healthy "$port"; t1="$(now_us)"
  host_starts+=("$((t1 - t0))"); host_rss="$(rss_kib "$pid")"
  kill "$pid"; wait "$pid" || true; rm -rf "$state"
done

size_bytes="$(podman image inspect --format '{{.Size}}' "$image")"
base_bytes="$(podman image inspect --format '{{.Size}}' "$base")"
gzip_bytes="$(podman save --format docker-archive "$image" 2>/dev/null | gzip -6 | wc -c)"
mib() { awk -v b="$1" 'BEGIN {printf "%.1f MiB", b/1048576}'; }

echo "| what | result |"
echo "|---|---|"
echo "| image, uncompressed (podman image inspect) | $(mib "$size_bytes") (the stand-in base: $(mib "$base_bytes")) |"
echo "| image, gzip-compressed (podman save \| gzip -6) | $(mib "$gzip_bytes") |"
echo "| binary, stripped (\`--profile image\`, what the image ships) | $(mib "$(stat -c %s target/image/riposte)") |"
echo "| binary, with symbols (\`--release\`) | $(mib "$(stat -c %s target/release/riposte)") |"
echo "| cold start in the container: \`podman start\` → first /healthz 200, $runs runs | $(printf '%s\n' "${container_starts[@]}" | summary) |"
echo "| cold start outside: exec → first /healthz 200, $runs runs | $(printf '%s\n' "${host_starts[@]}" | summary) |"
echo "| idle RSS after the first /healthz, in the container / outside | $((container_rss / 1024)) MiB / $((host_rss / 1024)) MiB |"
