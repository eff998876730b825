#!/usr/bin/env bash
# Runs every check and test of the workspace, as CI does: formatting, clippy with
# warnings as errors, and all tests (unit, property, golden and end-to-end).
set -euo pipefail
cd "$(dirname "$0")/.."

eval "$(scripts/install-test-deps.sh)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/posbon-target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

echo "== cargo fmt --check"
cargo fmt --all --check
echo "== cargo clippy --all-targets -- -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo test"
cargo test --workspace --locked
