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

# A free TCP port on 127.0.0.1.
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# Waits until a server accepts connections on 127.0.0.1:$1, or fails after $2 seconds.
wait_http() {
  local port="$1" seconds="${2:-60}" i
  for ((i = 0; i < seconds * 10; i++)); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "nothing answered on 127.0.0.1:$port after ${seconds}s" >&2
  return 1
}

# Servers started by this script, stopped on exit.
STARTED_PIDS=()
STARTED_DIRS=()
STARTED_CONTAINERS=()
stop_started() {
  local pid dir container
  for pid in "${STARTED_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${STARTED_PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  for container in "${STARTED_CONTAINERS[@]}"; do docker rm -f "$container" >/dev/null 2>&1 || true; done
  for dir in "${STARTED_DIRS[@]}"; do rm -rf "$dir"; done
}
trap stop_started EXIT

# s3s-fs 0.14.1 (an S3 server over a directory), built once into .cache/tools.
ensure_s3s() {
  if [ ! -x "$CACHE/tools/bin/s3s-fs" ]; then
    cargo install --quiet --root "$CACHE/tools" s3s-fs --version 0.14.1 --features binary --locked
  fi
}

# cargo-lambda 1.9.2 (with zig, for Lambda's glibc) in its own virtual environment: it is
# large, and only the packaging step needs it. Puts it on PATH for `cargo lambda`.
ensure_cargo_lambda() {
  local venv="$CACHE/cargo-lambda"
  if [ ! -x "$venv/bin/cargo-lambda" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check cargo-lambda==1.9.2
  fi
  export PATH="$venv/bin:$PATH"
}

# Creates bucket $2 on the S3 server at $1.
create_bucket() {
  "$VENV/bin/python" - "$1" "$2" <<'PY'
import sys, boto3, botocore
endpoint, bucket = sys.argv[1], sys.argv[2]
s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                  aws_access_key_id=__import__("os").environ["WKP1_TEST_S3_ACCESS_KEY"],
                  aws_secret_access_key=__import__("os").environ["WKP1_TEST_S3_SECRET_KEY"])
try:
    s3.create_bucket(Bucket=bucket)
except botocore.exceptions.ClientError as e:
    if e.response["Error"]["Code"] not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
        raise
PY
}

# Starts two different S3-compatible servers on free ports (moto and s3s-fs), plus MinIO in
# Docker when a Docker engine answers, and exports the variables the tests read.
start_s3_servers() {
  export WKP1_TEST_S3_ACCESS_KEY="${WKP1_TEST_S3_ACCESS_KEY:-wkp1test}"
  export WKP1_TEST_S3_SECRET_KEY="${WKP1_TEST_S3_SECRET_KEY:-wkp1test-secret}"
  export WKP1_TEST_S3_BUCKET="${WKP1_TEST_S3_BUCKET:-wkp1-test}"
  mkdir -p "$CACHE/logs"

  local port
  port=$(free_port)
  "$VENV/bin/moto_server" -H 127.0.0.1 -p "$port" >"$CACHE/logs/moto.log" 2>&1 &
  STARTED_PIDS+=($!)
  wait_http "$port"
  export WKP1_TEST_S3_MOTO="http://127.0.0.1:$port"
  create_bucket "$WKP1_TEST_S3_MOTO" "$WKP1_TEST_S3_BUCKET"

  ensure_s3s
  local root
  root=$(mktemp -d)
  STARTED_DIRS+=("$root")
  port=$(free_port)
  "$CACHE/tools/bin/s3s-fs" --host 127.0.0.1 --port "$port" \
    --access-key "$WKP1_TEST_S3_ACCESS_KEY" --secret-key "$WKP1_TEST_S3_SECRET_KEY" "$root" \
    >"$CACHE/logs/s3s.log" 2>&1 &
  STARTED_PIDS+=($!)
  wait_http "$port"
  export WKP1_TEST_S3_S3S="http://127.0.0.1:$port"
  create_bucket "$WKP1_TEST_S3_S3S" "$WKP1_TEST_S3_BUCKET"

  if [ -z "${WKP1_TEST_S3_ENDPOINT:-}" ] && command -v docker >/dev/null 2>&1 \
      && timeout 5 docker info >/dev/null 2>&1 && [ "${WKP1_TEST_MINIO_DOCKER:-1}" != 0 ]; then
    port=$(free_port)
    local name="wkp1-minio-$$"
    if docker run -d --name "$name" -p "127.0.0.1:$port:9000" \
        -e MINIO_ROOT_USER="$WKP1_TEST_S3_ACCESS_KEY" -e MINIO_ROOT_PASSWORD="$WKP1_TEST_S3_SECRET_KEY" \
        minio/minio server /data >/dev/null 2>&1; then
      STARTED_CONTAINERS+=("$name")
      wait_http "$port" 120 && export WKP1_TEST_S3_ENDPOINT="http://127.0.0.1:$port"
    fi
  fi
  if [ -n "${WKP1_TEST_S3_ENDPOINT:-}" ]; then
    create_bucket "$WKP1_TEST_S3_ENDPOINT" "$WKP1_TEST_S3_BUCKET"
    echo "MinIO (or your S3 server) at $WKP1_TEST_S3_ENDPOINT joins the store tests"
  else
    echo "no Docker engine and no WKP1_TEST_S3_ENDPOINT: testing against moto and s3s-fs only"
  fi
  export WKP1_REQUIRE_S3=1
  echo "moto at $WKP1_TEST_S3_MOTO, s3s-fs at $WKP1_TEST_S3_S3S"
}
