#!/bin/sh
# The Dockerfile's dependency stage builds only the manifests' dependencies,
# so that source edits do not rebuild them. Cargo still loads every target
# of every workspace member, so each needs a file: this writes empty ones
# (run in a directory holding Cargo.toml and sim/Cargo.toml). The [[bench]]
# names are read from Cargo.toml, so a new bench needs no edit here.
# `.ci/run` checks that the workspace loads with these stubs.
set -eu
mkdir -p src benches sim/src
echo 'fn main() {}' > src/main.rs
: > src/lib.rs
: > sim/src/lib.rs
for bench in $(awk '/^\[\[bench\]\]/ {b = 1} b && /^name/ {gsub(/"/, "", $3); print $3; b = 0}' Cargo.toml); do
  echo 'fn main() {}' > "benches/$bench.rs"
done
