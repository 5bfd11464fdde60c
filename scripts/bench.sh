#!/usr/bin/env bash
# Runs the benchmarks: the function's throughput against direct store access (file:// and an
# S3 server started here). Results are printed as Markdown tables; record them in docs/.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
source scripts/lib.sh

step "python tools and S3 servers"
ensure_venv
start_s3_servers

step "function throughput (persist/restore vs direct store access)"
cargo bench --locked -p wkp1-selfhosted --bench throughput
