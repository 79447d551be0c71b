#!/usr/bin/env bash
# Runs a command with the Docker daemon up: starts dockerd when it is not running, and stops it again
# afterwards (only the daemon it started).
set -euo pipefail
if docker info >/dev/null 2>&1; then
  exec "$@"
fi
log=$(mktemp)
dockerd >"$log" 2>&1 &
pid=$!
trap 'kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; rm -f "$log"' EXIT
for _ in $(seq 120); do
  docker info >/dev/null 2>&1 && break
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.5
done
if ! docker info >/dev/null 2>&1; then
  echo "with-docker.sh: dockerd did not start:" >&2
  tail -n 20 "$log" >&2
  exit 1
fi
"$@"
