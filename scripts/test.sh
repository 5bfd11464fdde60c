#!/usr/bin/env bash
# Runs every test of the WKP-1 suite, on a fresh machine or a warm one.
#
# Installs what the tests need (idempotently, into .cache/), starts the servers they use on
# 127.0.0.1 with free ports, runs the whole workspace's tests once, and stops what it started.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
source scripts/lib.sh

step "formatting"
cargo fmt --all -- --check

step "python tools (.cache/venv)"
ensure_venv

step "test vectors against the independent Python reference"
"$VENV/bin/python" protocol/test-vectors/reference.py check

step "S3-compatible servers on 127.0.0.1"
start_s3_servers

step "lints"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "workspace tests"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --no-fail-fast
else
  cargo test --workspace --locked --no-fail-fast
fi
cargo test --workspace --locked --doc

step "all tests passed"
