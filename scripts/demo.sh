#!/usr/bin/env bash
# The main job, on the embedded default: a local directory store, no cloud.
#
# Starts the self-hosted WKP-1 function on a local directory and the weftkit-kv engine in
# serverless mode against it, loads sample data through boto3, persists, stops the engine with
# SIGTERM (final flush), starts a fresh engine on an empty volume and shows the data restored,
# with a summary. Set WKP1_DEMO_DIR to keep the files somewhere else than a temp dir, and
# WKP1_DEMO_ITEMS to load more or fewer items (default 20000).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
source scripts/lib.sh

step "build (release)"
cargo build --release --locked -p wkp1-selfhosted -p weftkit-kv-server

step "python tools (.cache/venv)"
ensure_venv

work="${WKP1_DEMO_DIR:-$(mktemp -d)}"
step "demo in $work"
"$VENV/bin/python" scripts/demo.py --bin "$repo/target/release" --work "$work" \
  --items "${WKP1_DEMO_ITEMS:-20000}"
echo
echo "logs: $work/*.log"
