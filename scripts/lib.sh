# Shared helpers for the scripts in this directory. Source it; do not run it.

CACHE="${WKP1_CACHE:-$repo/.cache}"
VENV="$CACHE/venv"
mkdir -p "$CACHE"

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

# A Python virtual environment with the packages the tests use; reinstalled only when the list
# of requirements changes.
ensure_venv() {
  local wanted="$repo/scripts/requirements.txt"
  if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
  fi
  if ! cmp -s "$wanted" "$VENV/.installed" 2>/dev/null; then
    "$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$wanted"
    cp "$wanted" "$VENV/.installed"
  fi
}
