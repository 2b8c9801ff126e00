#!/bin/sh
# Load test of spam_server with wrk (Debian package wrk): starts the server on
# 127.0.0.1 with the given model, POSTs a real spam message to /v1/classify
# (bench/server_post.lua) for DURATION seconds at each connection count, and
# prints requests/s and the p50/p99 latency wrk measured; then stops it.
#
#   bench/server_load.sh --model M.safetensors [--threads N] [--duration 10]
#                        [--connections "1 8 64"] [--message FILE] [--bin build/bin]
#                        [--server-args "..."]
#
# --threads goes to spam_server (its worker threads; default: all cores);
# --server-args are more of its options: past 64 connections, for example,
# "--max-connections-per-ip 256" (all of wrk's come from 127.0.0.1).
set -eu
cd "$(dirname "$0")/.."

model= threads= duration=10 conns="1 8 64" message=data/spam-sample-new/spam.eml bin=build/bin server_args=
while [ $# -gt 0 ]; do
  case "$1" in
    --model) model=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    --connections) conns=$2; shift 2 ;;
    --message) message=$2; shift 2 ;;
    --bin) bin=$2; shift 2 ;;
    --server-args) server_args=$2; shift 2 ;;
    -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "server_load.sh: unknown argument '$1'" >&2; exit 2 ;;
  esac
done
[ -n "$model" ] || { echo "server_load.sh: --model M.safetensors is required" >&2; exit 2; }
[ -f "$model" ] || { echo "server_load.sh: no model file $model" >&2; exit 1; }
[ -f "$message" ] || { echo "server_load.sh: no message file $message" >&2; exit 1; }
command -v wrk >/dev/null || { echo "server_load.sh: wrk is missing (Debian: apt-get install wrk)" >&2; exit 1; }
[ -x "$bin/spam_server" ] || { echo "server_load.sh: $bin/spam_server is missing (make examples)" >&2; exit 1; }

tmp=$(mktemp -d)
pid=
cleanup() {
  if [ -n "$pid" ]; then kill -TERM "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

: >"$tmp/out"
# shellcheck disable=SC2086 # server_args is a list of options
"$bin/spam_server" --model "$model" --host 127.0.0.1 --port 0 ${threads:+--threads "$threads"} $server_args \
  >"$tmp/out" 2>"$tmp/err" &
pid=$!
port=
i=0
while [ $i -lt 300 ]; do
  port=$(sed -n 's|^listening on http://127\.0\.0\.1:\([0-9]*\)$|\1|p' "$tmp/out" 2>/dev/null || true)
  [ -n "$port" ] && break
  kill -0 "$pid" 2>/dev/null || { echo "server_load.sh: spam_server exited:" >&2; cat "$tmp/err" >&2; pid=; exit 1; }
  sleep 0.1
  i=$((i + 1))
done
[ -n "$port" ] || { echo "server_load.sh: spam_server did not start" >&2; cat "$tmp/err" >&2; exit 1; }
url="http://127.0.0.1:$port/v1/classify"
cores=$(nproc 2>/dev/null || echo 1)

echo "spam_server: model $model, $(wc -c <"$message" | tr -d ' ')-byte message, ${threads:-$cores} worker thread(s), $cores core(s)"
printf '%12s %12s %12s %12s %8s\n' connections requests/s p50 p99 errors
status=0
for c in $conns; do
  t=$c; [ "$t" -gt "$cores" ] && t=$cores   # wrk threads: no more than connections or cores
  SPAM_MESSAGE="$message" wrk -t "$t" -c "$c" -d "${duration}s" --latency -s bench/server_post.lua "$url" >"$tmp/wrk" 2>&1 || {
    cat "$tmp/wrk" >&2; exit 1; }
  rps=$(awk '/^Requests\/sec:/ {print $2}' "$tmp/wrk")
  p50=$(awk '$1 == "50%" {print $2}' "$tmp/wrk")
  p99=$(awk '$1 == "99%" {print $2}' "$tmp/wrk")
  non2xx=$(awk '/Non-2xx or 3xx responses:/ {print $NF}' "$tmp/wrk")
  sockerr=$(awk '/Socket errors:/ {gsub(",", ""); print $4 + $6 + $8 + $10}' "$tmp/wrk")
  errors=$(( ${non2xx:-0} + ${sockerr:-0} ))
  printf '%12s %12s %12s %12s %8s\n' "$c" "$rps" "$p50" "$p99" "$errors"
  [ "$errors" -eq 0 ] || status=1
done
exit $status
