#!/usr/bin/env bash
# The main job, on the embedded default: a local directory store, no cloud.
#
# Starts the self-hosted WKP-1 function on a local directory, then plays an engine's life:
# claim a writer generation, persist a snapshot and deltas on "ticks", flush a final delta at
# "SIGTERM", and restore everything into an empty directory as a fresh container would,
# verifying every byte. Set WKP1_DEMO_DIR to keep the files somewhere else than a temp dir.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
source scripts/lib.sh

step "build (release)"
cargo build --release --locked -p wkp1-selfhosted -p wkp1-client

work="${WKP1_DEMO_DIR:-$(mktemp -d)}"
mkdir -p "$work"
bin="$repo/target/release"
"$bin/wkp1" keygen --key-id demo >"$work/keys"
port=$(free_port)

step "self-hosted function on 127.0.0.1:$port, storing in $work/store"
"$bin/wkp1-selfhosted" --listen "127.0.0.1:$port" --store "file://$work/store" \
  --keys-file "$work/keys" >"$work/function.log" 2>&1 &
STARTED_PIDS+=($!)
wait_http "$port" 30

step "persist -> restore round trip"
"$bin/wkp1" demo --url "http://127.0.0.1:$port" --key-id demo --secret-file "$work/keys" \
  --subtree kv/demo/replica-0 --dir "$work/engine"

echo
echo "store:        $work/store"
echo "function log: $work/function.log"
