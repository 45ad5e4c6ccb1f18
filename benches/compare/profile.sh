#!/usr/bin/env bash
# Where the time goes on the 1 KiB path, on the same setup as run.sh:
#   1. CPU per proxied request for nginx, HAProxy and lifeboat: user and
#      system time from /proc/PID/stat over wrk runs, interleaved rounds,
#      medians;
#   2. a flamegraph of lifeboat under the same load (`perf record -g` on a
#      build with frame pointers, folded and drawn by inferno), written to
#      docs/flame-1k.svg, with the largest inclusive shares printed.
#
# usage: benches/compare/profile.sh [ROUNDS] [SECONDS]   (default 3 rounds x 5 s)
# Installs perf (Debian's linux-perf) and inferno (cargo install) if missing.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS=${1:-3}
SECS=${2:-5}
CONNS=${CONNS:-32}
BASE=${BASE_PORT:-18000}
SVG=${FLAME_SVG:-docs/flame-1k.svg}

if ! command -v perf >/dev/null; then
  echo "installing: linux-perf" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq linux-perf >/dev/null
fi
if ! command -v inferno-flamegraph >/dev/null; then
  echo "installing: inferno (cargo install)" >&2
  cargo install --locked inferno >&2
fi
# Frame pointers let perf walk whole stacks cheaply; the separate target
# directory leaves the ordinary release build alone.
RUSTFLAGS="-C force-frame-pointers=yes" CARGO_TARGET_DIR=target/profile \
  cargo build --release --locked --bin lifeboat >&2
LIFEBOAT=./target/profile/release/lifeboat
# shellcheck source=benches/compare/anchors.sh
source benches/compare/anchors.sh

hz=$(getconf CLK_TCK)
ticks() { # pid -> "user system" in clock ticks, all threads, from /proc/PID/stat
  sed 's/.*) //' "/proc/$1/stat" | awk '{print $12, $13}'
}
per_request() { # proxy port -> "user_us sys_us req_per_s"
  local pid=${PROXY_PID[$1]} u1 s1 u2 s2 n
  read -r u1 s1 <<<"$(ticks "$pid")"
  n=$(taskset -c 0 wrk -t1 -c"$CONNS" -d"${SECS}s" "http://127.0.0.1:$2/1k.bin" | awk '/requests in/ {print $1}')
  read -r u2 s2 <<<"$(ticks "$pid")"
  awk -v u=$((u2 - u1)) -v s=$((s2 - s1)) -v n="$n" -v hz="$hz" -v t="$SECS" \
    'BEGIN {printf "%.1f %.1f %.0f\n", u * 1e6 / hz / n, s * 1e6 / hz / n, n / t}'
}

declare -A user sys rps
proxies=(nginx haproxy lifeboat)
port_of() { case $1 in nginx) echo "$VIA_NGINX";; haproxy) echo "$VIA_HAPROXY";; lifeboat) echo "$VIA_LIFEBOAT";; esac; }
for r in $(seq "$ROUNDS"); do
  for p in "${proxies[@]}"; do
    read -r u s q <<<"$(per_request "$p" "$(port_of "$p")")"
    user[$p]+="$u "; sys[$p]+="$s "; rps[$p]+="$q "
    echo "  round $r $p: user $u us, sys $s us per request, $q req/s" >&2
  done
done

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
echo
echo "CPU per proxied 1 KiB request: wrk -t1 -c$CONNS -d${SECS}s, $ROUNDS interleaved rounds, medians; wrk on CPU 0, origin + proxy on CPU 1"
printf '| proxy | user µs | system µs | total µs | req/s |\n|---|---|---|---|---|\n'
for p in "${proxies[@]}"; do
  u=$(echo "${user[$p]}" | median); s=$(echo "${sys[$p]}" | median); q=$(echo "${rps[$p]}" | median)
  printf '| %s | %s | %s | %.1f | %s |\n' "$p" "$u" "$s" "$(echo "$u + $s" | bc -l)" "$q"
done

echo >&2
echo "profiling lifeboat for ${SECS}s (perf record -g)..." >&2
taskset -c 0 wrk -t1 -c"$CONNS" -d"$((SECS + 2))s" "http://127.0.0.1:$VIA_LIFEBOAT/1k.bin" >/dev/null &
load=$!
sleep 1
perf record -q -F 999 -g -p "${PROXY_PID[lifeboat]}" -o "$work/perf.data" -- sleep "$SECS" 2>/dev/null
wait "$load"
perf script -i "$work/perf.data" 2>/dev/null | inferno-collapse-perf > "$work/folded"
inferno-flamegraph --title "lifeboat: 1 KiB keep-alive proxying (wrk -c$CONNS, origin and lifeboat on one CPU)" \
  --width 1400 < "$work/folded" > "$SVG"
echo "flamegraph: $SVG"

# Inclusive share of each part of the path: a sample counts once for a part
# if any frame of its stack matches.
echo
echo "| part of the path (frames matching) | share of lifeboat's samples |"
echo "|---|---|"
awk '
  BEGIN {
    n = split("kernel: sending (writev)=do_writev|vfs_writev;kernel: receiving (recvfrom)=sys_recvfrom;" \
      "kernel: epoll_wait=sys_epoll_wait;" \
      "hyper server: parse + encode=role::Server as hyper::proto::h1::Http1Transaction;" \
      "hyper client: parse + encode=role::Client as hyper::proto::h1::Http1Transaction;" \
      "hyper-util legacy client + pool=hyper_util::client::legacy;" \
      "header maps=http::header::map;allocator (jemalloc)=_rjem_;memmove / memcpy=mem(move|cpy);" \
      "lifeboat: request rewrite=Upstream::rewrite_request;lifeboat: body wrappers=lifeboat::body::;" \
      "clock_gettime=clock_gettime", parts, ";")
    for (i = 1; i <= n; i++) { split(parts[i], kv, "="); name[i] = kv[1]; pat[i] = kv[2] }
  }
  {
    count = $NF; total += count
    for (i = 1; i <= n; i++) if ($0 ~ pat[i]) hit[i] += count
  }
  END { for (i = 1; i <= n; i++) printf "| %s | %.1f %% |\n", name[i], 100 * hit[i] / total }
' "$work/folded"
