#!/usr/bin/env bash
# The release-day stampede on a real app server (issue #12): gunicorn with 4
# sync workers and 20 ms pages (about 200 pages/s) meets a wave of 2,000
# pages/s for 15 s plus 20 downloads/s, with nothing in front, with HAProxy
# (maxconn 8 on the server, a 500 ms queue, downloads first), and with
# lifeboat (its documented defaults, which learn the origin's limit; and
# hand-set max_inflight = 4 with one slot kept for downloads).
#
# Each row gets a fresh gunicorn (and a fresh front): its unloaded page time
# and download p99 are measured first (5 s at 20 pages/s + 20 downloads/s,
# straight at gunicorn), and its saturated throughput (8 clients back to
# back for 3 s: a cross-check of the capacity goodput is measured against),
# then the front sees WARMUP seconds of that same
# ordinary traffic (the site before the wave), then the wave, sent open-loop
# by `cargo bench --bench wave` (benches/wave.rs). Goodput = pages served ÷
# pages gunicorn could have served during the wave (4 workers over its
# unloaded page time, less what the downloads took, second by second, never
# more than were offered).
#
# usage: benches/compare/stampede.sh [ROUNDS]          (default 1)
# env:   ROWS="direct haproxy defaults cold hand4"   (which rows, in order;
#          "cold" is the defaults with no traffic before the wave)
#        WARMUP=3  BASE_PORT=18300  WAVE_PAGES_PER_S=2000  WAVE_SECONDS=15
#        WAVE_DOWNLOADS_PER_S=20  WAVE_TIMEOUT=10s
#        WAVE_VISITORS=1000 (the wave comes from that many loopback addresses,
#          127.1.x.y, as a crowd does; 1 = all from 127.0.0.1, which
#          lifeboat's per-address apology budget treats as one greedy client)
# Installs haproxy (Debian) and gunicorn (PyPI, into a venv under target/)
# if missing. Everything listens on 127.0.0.1; every step is bounded in
# time; everything it starts is stopped on exit. Nothing is pinned to a CPU.
# JSON lines go to target/bench-results/wave.jsonl, lifeboat's logs to
# target/bench-results/wave-logs/.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS=${1:-1}
ROWS=${ROWS:-direct haproxy defaults cold hand4}
WARMUP=${WARMUP:-3}
BASE=${BASE_PORT:-18300}
WORKERS=4
export WAVE_PAGES_PER_S=${WAVE_PAGES_PER_S:-2000} WAVE_SECONDS=${WAVE_SECONDS:-15}
export WAVE_DOWNLOADS_PER_S=${WAVE_DOWNLOADS_PER_S:-20} WAVE_TIMEOUT=${WAVE_TIMEOUT:-10s}
export WAVE_VISITORS=${WAVE_VISITORS:-1000}
COMMAND="benches/compare/stampede.sh $*"

# --- what is missing --------------------------------------------------------
need=()
for tool in haproxy curl pgrep python3; do command -v "$tool" >/dev/null || need+=("$tool"); done
if ((${#need[@]})); then
  echo "installing: haproxy curl procps python3 python3-venv" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq haproxy curl procps python3 python3-venv >/dev/null
fi
VENV=target/compare-venv
if ! "$VENV/bin/gunicorn" --version >/dev/null 2>&1; then
  echo "installing gunicorn into $VENV" >&2
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q gunicorn
fi

cargo build --release --locked --bin lifeboat >&2
WAVE_BIN=$(cargo bench --locked --bench wave --no-run --message-format=json 2>/dev/null |
  python3 -c 'import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("target", {}).get("name") == "wave" and m.get("executable"):
        print(m["executable"])')
[ -x "$WAVE_BIN" ] || { echo "error: could not build the wave bench" >&2; exit 1; }

# --- a private copy of everything, and cleanup -------------------------------
work=$(mktemp -d /tmp/lifeboat-stampede.XXXXXX)
# Copies: a rebuild in this tree during the run cannot swap the binaries.
cp target/release/lifeboat "$work/lifeboat"
cp "$WAVE_BIN" "$work/wave"
cp benches/compare/app.py "$work/app.py"
mkdir -p target/bench-results/wave-logs
RESULTS=target/bench-results/wave.jsonl
run_json=$work/run.jsonl
: > "$run_json"
pids=()

stop() { # pid [signal]: TERM (gunicorn: INT, its quick shutdown), KILL after 5 s
  local pid=$1 sig=${2:-TERM} kids k
  local keep=()
  for k in "${pids[@]}"; do [ "$k" = "$pid" ] || keep+=("$k"); done
  pids=("${keep[@]}")
  kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
  kids=$(pgrep -P "$pid" || true)   # gunicorn's workers
  kill "-$sig" "$pid" 2>/dev/null || true
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  for k in $kids; do
    if ps -o args= -p "$k" 2>/dev/null | grep -q "$work"; then kill -KILL "$k" 2>/dev/null || true; fi
  done
}
cleanup() {
  while ((${#pids[@]})); do stop "${pids[0]}"; done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

wait_ready() { # url: until it answers, at most 10 s
  for _ in $(seq 100); do
    curl -s -o /dev/null -m 1 "$1" && return 0
    sleep 0.1
  done
  echo "error: $1 never answered" >&2
  exit 1
}

wave() { # label url [VAR=value...]: one JSON line, bounded in time
  local label=$1 url=$2
  shift 2
  local limit
  limit=$(python3 -c "import sys; print(int(float(sys.argv[1]) + 90))" "${WAVE_SECONDS}")
  env WAVE_LABEL="$label" WAVE_URL="$url" "$@" timeout -k 5 "$limit" "$work/wave" | tail -1
}

field() { python3 -c 'import json, sys; v = json.loads(sys.stdin.read()).get(sys.argv[1]); print("" if v is None else v)' "$1"; }

start_gunicorn() { # port
  "$VENV/bin/gunicorn" -w "$WORKERS" -k sync --backlog 2048 --bind "127.0.0.1:$1" \
    --chdir "$work" --log-level warning --error-logfile "$work/gunicorn-$1.log" app:app &
  pids+=($!)
  GUNICORN_PID=$!
}

start_haproxy() { # port origin-port
  cat > "$work/haproxy-$1.cfg" <<CONF
global
  maxconn 8000
defaults
  mode http
  # no "log" line: like lifeboat's access = false, nothing is logged
  timeout connect 4s
  timeout client 30s
  timeout server 30s
  timeout queue 500ms
frontend fe
  bind 127.0.0.1:$1
  default_backend origin
backend origin
  http-request set-priority-class int(-10) if { path_beg /download/ }
  server gunicorn 127.0.0.1:$2 maxconn 8
CONF
  haproxy -db -f "$work/haproxy-$1.cfg" 2> "$work/front-$1.log" &
  pids+=($!)
  FRONT_PID=$!
}

start_lifeboat() { # port origin-port extra-origin-keys
  cat > "$work/lifeboat-$1.toml" <<CONF
[listen]
http = "127.0.0.1:$1"

[origin]
url = "http://127.0.0.1:$2"
$3
[[route]]
match = "/download/*"
class = "primary"

[admin]
listen = "off"

[log]
access = false
CONF
  "$work/lifeboat" run --config "$work/lifeboat-$1.toml" 2> "$work/front-$1.log" &
  pids+=($!)
  FRONT_PID=$!
}

describe() {
  case $1 in
    direct) echo "nothing";;
    haproxy) echo "HAProxy, \`maxconn\` 8 + 500 ms queue + priority";;
    defaults) echo "lifeboat, documented defaults (no capacity told)";;
    cold) echo "lifeboat, documented defaults, cold (no traffic before the wave)";;
    hand4) echo "lifeboat, hand-set \`max_inflight = 4\`, \`primary_reserved = 1\`";;
    *) echo "unknown row: $1" >&2; exit 1;;
  esac
}

echo "before: $(uptime)" >&2
LOAD_BEFORE=$(uptime | sed 's/.*load average: //')
port=$BASE
for round in $(seq "$ROUNDS"); do
  for row in $ROWS; do
    name=$(describe "$row")
    origin=$port front=$((port + 1))
    port=$((port + 2))
    echo "round $round: $name (gunicorn :$origin, front :$front)" >&2
    start_gunicorn "$origin"
    wait_ready "http://127.0.0.1:$origin/download/ready"
    unloaded=$(wave "$row unloaded" "http://127.0.0.1:$origin" \
      WAVE_PAGES_PER_S=20 WAVE_DOWNLOADS_PER_S=20 WAVE_SECONDS=5)
    saturated=$(wave "$row saturated" "http://127.0.0.1:$origin" WAVE_CONCURRENCY=8 WAVE_SECONDS=3)
    page_ms=$(field page_p50_ms <<<"$unloaded")
    download_ms=$(field download_done_p50_ms <<<"$unloaded")
    [ -n "$page_ms" ] || { echo "error: gunicorn served no page unloaded: $unloaded" >&2; exit 1; }
    case $row in
      direct) url="http://127.0.0.1:$origin"; FRONT_PID=;;
      haproxy) start_haproxy "$front" "$origin"; url="http://127.0.0.1:$front";;
      defaults|cold) start_lifeboat "$front" "$origin" ""; url="http://127.0.0.1:$front";;
      hand4) start_lifeboat "$front" "$origin" $'max_inflight = 4\nprimary_reserved = 1'; url="http://127.0.0.1:$front";;
    esac
    wait_ready "$url/download/ready"
    warm='{}'
    if [ "$row" != cold ] && [ "$WARMUP" != 0 ]; then
      warm=$(wave "$row warm-up" "$url" WAVE_PAGES_PER_S=20 WAVE_DOWNLOADS_PER_S=20 WAVE_SECONDS="$WARMUP")
    fi
    result=$(wave "$row" "$url" WAVE_WORKERS=$WORKERS WAVE_PAGE_MS="$page_ms" WAVE_DOWNLOAD_MS="$download_ms")
    python3 -c 'import json, sys
r = json.loads(sys.argv[1])
r.update(round=int(sys.argv[2]), row=sys.argv[3], name=sys.argv[4], unloaded=json.loads(sys.argv[5]),
         warmup=json.loads(sys.argv[6]), saturated=json.loads(sys.argv[7]))
print(json.dumps(r))' "$result" "$round" "$row" "$name" "$unloaded" "$warm" "$saturated" | tee -a "$RESULTS" >> "$run_json"
    if [ -n "$FRONT_PID" ]; then
      stop "$FRONT_PID"
      cp "$work/front-$front.log" "target/bench-results/wave-logs/$row-round$round.log"
    fi
    stop "$GUNICORN_PID" INT
    echo "  downloads ok $(field downloads_ok_pct <<<"$result") %, pages ok $(field pages_ok <<<"$result"), goodput $(field goodput_pct <<<"$result") %" >&2
  done
done
LOAD_AFTER=$(uptime | sed 's/.*load average: //')

VERSIONS="$("$VENV/bin/gunicorn" --version | sed 's/.*version \([^)]*\).*/gunicorn \1/'), $(haproxy -v | head -1 | awk '{print "HAProxy", $3}')"
python3 - "$run_json" "$COMMAND" "$LOAD_BEFORE" "$LOAD_AFTER" "$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src Cargo.toml Cargo.lock || echo ' + uncommitted changes')" "$VERSIONS" <<'PY'
import datetime, json, statistics, sys

path, command, load_before, load_after, rev, versions = sys.argv[1:7]
rows = [json.loads(line) for line in open(path)]
if not rows:
    sys.exit("no results")

def ms(v):
    if v is None:
        return "–"
    return f"{v:,.0f} ms" if v >= 10 else f"{v:.1f} ms"

def told(r):
    if r["refused"] == 0:
        return f"never ({r['timeouts']:,} timeouts)" if r["timeouts"] else "nobody refused"
    out = f"p90 {ms(r['refused_p90_ms'])} (p50 {ms(r['refused_p50_ms'])}, p99 {ms(r['refused_p99_ms'])}; {r['refused']:,} refused)"
    if r["timeouts"]:
        out += f"; {r['timeouts']:,} never told (timeouts)"
    return out

def downloads(r):
    pct = r["downloads_ok_pct"] or 0.0
    if r["downloads_ok"] == 0:
        return f"0 % (0/{r['downloads_sent']})"
    return f"{pct:.1f} %, {ms(r['download_p99_ms'])} ({r['downloads_ok']}/{r['downloads_sent']})"

def others(r):
    keys = {k: v for k, v in r["pages"].items() if k != "ok"}
    return ", ".join(f"{k} {v:,}" for k, v in sorted(keys.items())) or "–"

r0 = rows[0]
print()
print(f"## The release-day stampede on gunicorn ({datetime.date.today().isoformat()})")
print()
print(f"`{command.strip()}` at {rev} ({versions}): gunicorn with 4 sync workers, 20 ms pages;"
      f" a wave of {r0['pages_per_s']:,.0f} pages/s + {r0['downloads_per_s']:,.0f} downloads/s (256 KiB) for"
      f" {r0['seconds']:.0f} s, open loop from {r0['visitors']:,} loopback addresses, client timeout {r0['timeout_s']:.0f} s;"
      " every row on a fresh gunicorn and a fresh front. All on 127.0.0.1 on a shared 2-core machine,"
      f" nothing pinned (load average before {load_before}, after {load_after}).")
for rnd in sorted({r["round"] for r in rows}):
    print()
    if len({r["round"] for r in rows}) > 1:
        print(f"### round {rnd}")
        print()
    print("| in front of the origin | downloads ok, p99 | pages served, as a share of what the origin could serve in the wave | pages served per second, seconds 4 to the end (median) | served pages p50 / p99 | how fast a refused visitor is told | pages not served |")
    print("|---|---|---|---|---|---|---|")
    for r in (r for r in rows if r["round"] == rnd):
        good = r["goodput_pct"]
        share = "–" if good is None else f"{good:.0f} % ({r['pages_ok']:,} of {r['could_serve']:,.0f}; {r['pages_sent']:,} offered)"
        steady = statistics.median(s["pages_ok"] for s in r["per_second"][3:] or r["per_second"])
        served = f"{ms(r['page_p50_ms'])} / {ms(r['page_p99_ms'])}"
        print(f"| {r['name']} | {downloads(r)} | {share} | {steady:.0f} | {served} | {told(r)} | {others(r)} |")
    print()
    print("Unloaded, before each row: gunicorn straight (page p50 to headers → capacity = 4 workers ÷ page time,"
          " what goodput above is measured against; download p50 / p99), its saturated throughput (8 clients"
          " back to back, 3 s) and goodput against that instead, and the front during the warm-up:")
    print()
    print("| row | page p50 | capacity | download p50 / p99 (to headers) | saturated | goodput against saturated | via the front: page p50, download p99 |")
    print("|---|---|---|---|---|---|---|")
    for r in (r for r in rows if r["round"] == rnd):
        u, w, sat = r["unloaded"], r["warmup"], r["saturated"]["pages_ok_per_s"]
        cap = 4000.0 / u["page_p50_ms"] if u.get("page_p50_ms") else 0
        via = "no warm-up" if not w else f"{ms(w.get('page_p50_ms'))}, {ms(w.get('download_p99_ms'))}"
        could = sum(min(s["pages_sent"], sat) for s in r["per_second"])
        print(f"| {r['row']} | {ms(u.get('page_p50_ms'))} | {cap:.0f} pages/s | {ms(u.get('download_p50_ms'))} / {ms(u.get('download_p99_ms'))}"
              f" | {sat:.0f} pages/s | {r['pages_ok'] / max(could, 1) * 100:.0f} % | {via} |")
    print()
    print("Pages served per second of the wave (by intended send time):")
    print()
    for r in (r for r in rows if r["round"] == rnd):
        print(f"- {r['row']}: " + " ".join(str(s["pages_ok"]) for s in r["per_second"]))
print()
print("Downloads ok p99 is to response headers, from the intended send time (whole 256 KiB:"
      " " + ", ".join(f"{r['row']} {ms(r['download_done_p99_ms'])}" for r in rows if r["round"] == rows[-1]["round"]) + ")."
      " A refusal is any answer of status 400 or more (HAProxy's 503, lifeboat's apology); 'pages not served' counts by outcome.")
PY
