#!/bin/sh
# Makes the workspace loadable from its manifests alone, for the image's dependency layer
# (infra/Dockerfile): an empty source file for every target Cargo would look for. Run from the
# workspace root after copying Cargo.toml, Cargo.lock and every member's Cargo.toml.
#
# Generic on purpose: a target added to a manifest needs no edit here (the layer once listed its
# stubs by hand, and the list had already missed a benchmark). tests/e2e/container.rs runs this on
# the real manifests and checks that Cargo sees every target, each with a file.
set -eu

members="$(sed -n 's/^members = \[\(.*\)\]$/\1/p' Cargo.toml | tr -d '" ' | tr ',' ' ')"
[ -n "$members" ] || { echo "stub-workspace.sh: no members = [...] line in Cargo.toml" >&2; exit 1; }
for member in $members; do
  # Targets Cargo infers (src/lib.rs, src/main.rs) and those a manifest names (path = "…rs").
  for target in src/lib.rs $(sed -n 's/^path = "\(.*\.rs\)"$/\1/p' "$member/Cargo.toml"); do
    mkdir -p "$member/$(dirname "$target")"
    case "$target" in
      */lib.rs) echo '//! Stub for the dependency layer.' >"$member/$target" ;;
      *) echo 'fn main() {}' >"$member/$target" ;;
    esac
  done
done
