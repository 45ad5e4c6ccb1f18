#!/usr/bin/env bash
# The apology with the access log off, on to a file (`access_path`), and on
# to stderr redirected to a file (the default destination, `2>file`), three
# degraded lifeboats side by side, measured in interleaved rounds (docs/
# BENCHMARKS.md, "Access logs on and off"). lifeboat pinned to CPU 1, wrk to
# CPU 0, as benches/compare does.
#
#     docs/measure/access_log_ab.sh target/release/lifeboat 5 3
#
# Arguments: binary, rounds (5), seconds per run (3). Uses ports 18961-18963.
set -euo pipefail
BIN=$(realpath "$1")
ROUNDS=${2:-5}
SECS=${3:-3}
work=$(mktemp -d /tmp/lifeboat-access-ab.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

start() { # name port [log] lines
  cat >"$work/$1.toml" <<CONF
[listen]
http = "127.0.0.1:$2"
[origin]
url = "http://127.0.0.1:1"
[admin]
listen = "off"
[shedding]
mode = "degraded"
client_budget = 0
[log]
$3
CONF
  taskset -c 1 "$BIN" run --config "$work/$1.toml" 2>"$work/$1.stderr" & pids+=($!)
}
start off 18961 $'level = "error"\naccess = false'
start file 18962 $'level = "info"\naccess_path = "access.log"'
start stderr 18963 'level = "info"'
declare -A port=([off]=18961 [file]=18962 [stderr]=18963) rps
for t in off file stderr; do
  for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:${port[$t]}/" && break; sleep 0.05; done
  taskset -c 0 wrk -t1 -c32 -d1s "http://127.0.0.1:${port[$t]}/" >/dev/null
done
for r in $(seq "$ROUNDS"); do
  line="round $r:"
  for t in off file stderr; do
    q=$(taskset -c 0 wrk -t1 -c32 -d"${SECS}s" "http://127.0.0.1:${port[$t]}/" | awk '/Requests\/sec/ {print $2}')
    rps[$t]+="$q "; line+=" $t $q"
  done
  echo "$line"
done
# Each round pairs the three in time; on a shared machine the figures drift
# between rounds more than within one, so the ratio is taken per round and
# its median reported.
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
for t in file stderr; do
  ratios=$(paste -d' ' <(tr ' ' '\n' <<<"${rps[$t]}" | grep -v '^$') <(tr ' ' '\n' <<<"${rps[off]}" | grep -v '^$') \
    | awk '{printf "%.2f ", $1 / $2}')
  echo "$t / off: median $(echo "$ratios" | median) (by round: ${ratios% })"
done
