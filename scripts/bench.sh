#!/usr/bin/env bash
# Runs the benchmarks, each against a baseline measured in the same run: the function's
# throughput against direct store access (file:// and an S3 server started here), the engine
# against raw fjall and redb, and the server's persistence and API costs. Results are printed
# as Markdown tables; record them in the crate READMEs.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
source scripts/lib.sh

step "python tools and S3 servers"
ensure_venv
start_s3_servers

step "function throughput (persist/restore vs direct store access)"
cargo bench --locked -p wkp1-selfhosted --bench throughput

step "engine: WeftKitKV against raw fjall and redb"
cargo bench --locked -p weftkit-kv

step "server: persist/restore vs raw store, 1-key delta, final flush"
cargo bench --locked -p weftkit-kv-server --bench persistence

step "server: DynamoDB API latency and throughput over loopback"
cargo bench --locked -p weftkit-kv-server --bench api

step "AWS Lambda function: cold start through the local Lambda runtime"
cargo bench --locked -p wkp1-aws-lambda --bench cold_start
