#!/usr/bin/env bash
# Runs every test of the WKP-1 suite, on a fresh machine or a warm one.
#
# Installs what the tests need (idempotently, into .cache/), starts the servers they use on
# 127.0.0.1 with free ports, runs the whole workspace's tests once, and stops what it started.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
source scripts/lib.sh

# Every build here is one pass: incremental artifacts would only cost time and disk.
export CARGO_INCREMENTAL=0

step "formatting"
cargo fmt --all -- --check

step "python tools (.cache/venv)"
ensure_venv

step "test vectors against the independent Python reference"
"$VENV/bin/python" protocol/test-vectors/reference.py check

step "S3-compatible servers on 127.0.0.1"
start_s3_servers

# One feature set for every cargo command, so nothing is built twice.
features=(--workspace --locked --features wkp1-conformance/e2e)

step "lints"
cargo clippy "${features[@]}" --all-targets -- -D warnings

step "workspace tests"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run "${features[@]}" --no-fail-fast
else
  cargo test "${features[@]}" --no-fail-fast
fi
# The MinIO variants are #[ignore]d, so without a MinIO the report counts them as skipped;
# with one, they run here.
if [ -n "${WKP1_TEST_S3_ENDPOINT:-}" ]; then
  step "workspace tests against MinIO at $WKP1_TEST_S3_ENDPOINT"
  if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run "${features[@]}" --no-fail-fast --run-ignored only -E 'test(/(^|::)minio::/)'
  else
    cargo test "${features[@]}" --no-fail-fast -- --ignored minio::
  fi
fi
cargo test "${features[@]}" --doc

step "binaries (from the test build)"
# Every package with a binary has integration tests, so the test build above already built
# every binary with the workspace's test feature set. A separate `cargo build --bins` would
# resolve features without the dev-dependencies and compile much of the workspace again.
bin="$repo/target/debug"
for name in weftkit-kv wkp1-selfhosted wkp1-conformance wkp1 wkp1-lambda; do
  if [ ! -x "$bin/$name" ]; then
    echo "the test build did not leave $bin/$name; build it with: cargo build ${features[*]} --bins" >&2
    exit 1
  fi
done

step "wkp1-conformance vectors check against the independent Python reference"
ref="$VENV/bin/python $repo/protocol/test-vectors/reference.py"
"$bin/wkp1-conformance" vectors check --decompresses \
  --sign "$ref sign" --verify "$ref verify" --segment "$ref segment" | tail -n 1

step "AWS Lambda package: cargo lambda build (x86_64 bootstrap zip)"
ensure_cargo_lambda
cargo lambda build --profile lambda --output-format zip -p wkp1-aws-lambda --locked
ls -l target/lambda/wkp1-lambda/bootstrap.zip

step "boto3 against weftkit-kv, and against moto's DynamoDB as the reference"
kv_port=$(free_port)
kv_data=$(mktemp -d)
STARTED_DIRS+=("$kv_data")
WEFTKIT_ACCESS_KEY_ID=AKIDBOTO3TEST WEFTKIT_SECRET_ACCESS_KEY=boto3-test-secret \
  "$bin/weftkit-kv" serve --listen "127.0.0.1:$kv_port" --data "$kv_data" \
  >"$CACHE/logs/weftkit-kv-boto3.log" 2>&1 &
STARTED_PIDS+=($!)
wait_http "$kv_port"
WEFTKIT_TEST_ENDPOINT="http://127.0.0.1:$kv_port" WEFTKIT_TEST_ACCESS_KEY=AKIDBOTO3TEST \
  WEFTKIT_TEST_SECRET_KEY=boto3-test-secret MOTO_ENDPOINT="$WKP1_TEST_S3_MOTO" \
  "$VENV/bin/python" -m unittest -v engine/server/tests/boto3/test_dynamodb.py

step "end to end: engine, function and store as processes (local directory, then S3)"
"$bin/wkp1-conformance" e2e --engine "$bin/weftkit-kv" --function "$bin/wkp1-selfhosted"
"$bin/wkp1-conformance" e2e --engine "$bin/weftkit-kv" --function "$bin/wkp1-selfhosted" \
  --s3-server "$CACHE/tools/bin/s3s-fs"

step "all tests passed"
