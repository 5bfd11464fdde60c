#!/usr/bin/env bash
# The main job on the embedded default (a local directory store, no cloud).
set -euo pipefail
echo "wkp1 demo: the self-hosted function and engine round trip are coming in a later release."
echo "Today: ./scripts/test.sh runs the protocol's tests and vectors."
