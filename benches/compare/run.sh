#!/usr/bin/env bash
# Side-by-side: direct to an nginx origin, via nginx, via HAProxy and via
# lifeboat, plus nginx `return 503` vs lifeboat's error page, measured with wrk
# in interleaved rounds. Load generator pinned to CPU 0, origin + proxy to
# CPU 1. All traffic on 127.0.0.1; every run is bounded by wrk's duration.
#
# usage: benches/compare/run.sh [ROUNDS] [SECONDS]      (default 5 rounds x 5 s)
# Installs nginx, haproxy and wrk from Debian's packages if missing.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS=${1:-5}
SECS=${2:-5}
CONNS=${CONNS:-32}
BASE=${BASE_PORT:-18000}

need=()
for tool in nginx haproxy wrk taskset; do command -v "$tool" >/dev/null || need+=("$tool"); done
if ((${#need[@]})); then
  echo "installing: nginx-light haproxy wrk" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light haproxy wrk util-linux >/dev/null
fi
cargo build --release --locked --bin lifeboat >&2

work=$(mktemp -d /tmp/lifeboat-compare.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
[ -n "${DEBUG_WRK:-}" ] && trap - EXIT

mkdir -p "$work/www" "$work/logs"
chmod 755 "$work"   # nginx workers run as nobody; mktemp made it 0700
head -c 1024 /dev/urandom > "$work/www/1k.bin"
head -c $((10 << 20)) /dev/urandom > "$work/www/10m.bin"
printf '<!doctype html><title>Sorry</title><h1>We are very busy</h1><p>Please retry in a minute.</p>\n' > "$work/503.html"
chmod -R a+rX "$work"

ORIGIN=$BASE; VIA_NGINX=$((BASE+1)); VIA_HAPROXY=$((BASE+2)); VIA_LIFEBOAT=$((BASE+3)); NGINX_503=$((BASE+4)); LIFEBOAT_503=$((BASE+5))
# Three nginx processes: the origin, the proxy, and the static 503. The proxy
# must not share a process with the origin, or its origin hop would cost no
# cross-process wake-up and it would be measured at an advantage over
# HAProxy and lifeboat, which are separate processes.
nginx_conf() { # name body
  cat > "$work/nginx-$1.conf" <<CONF
worker_processes 1;
daemon off;
pid $work/nginx-$1.pid;
error_log $work/logs/error-$1.log crit;
events { worker_connections 4096; }
http {
  access_log off;
  sendfile on; tcp_nopush on; tcp_nodelay on;
  keepalive_requests 1000000;
  $2
}
CONF
}
nginx_conf origin "server { listen 127.0.0.1:$ORIGIN; root $work/www; }"
nginx_conf proxy "upstream origin { server 127.0.0.1:$ORIGIN; keepalive 64; }
  server { listen 127.0.0.1:$VIA_NGINX;
    location / { proxy_pass http://origin; proxy_http_version 1.1; proxy_set_header Connection \"\"; } }"
nginx_conf static503 "server { listen 127.0.0.1:$NGINX_503;
    location / { root $work; error_page 503 /503.html; return 503; }
    location = /503.html { root $work; internal; } }"
cat > "$work/haproxy.cfg" <<CONF
global
  # 4096 keeps haproxy's fd needs (2 per connection + spare) under common 20k limits.
  maxconn 4096
  nbthread 1
defaults
  mode http
  timeout connect 4s
  timeout client 60s
  timeout server 60s
  http-reuse always
frontend fe
  bind 127.0.0.1:$VIA_HAPROXY
  default_backend origin
backend origin
  server o1 127.0.0.1:$ORIGIN
CONF
cat > "$work/lifeboat.toml" <<CONF
[listen]
http = "127.0.0.1:$VIA_LIFEBOAT"
[origin]
url = "http://127.0.0.1:$ORIGIN"
[log]
level = "error"
access = false
[admin]
listen = "off"
CONF

for n in origin proxy static503; do taskset -c 1 nginx -c "$work/nginx-$n.conf" & pids+=($!); done
taskset -c 1 haproxy -f "$work/haproxy.cfg" & pids+=($!)
taskset -c 1 ./target/release/lifeboat run --config "$work/lifeboat.toml" & pids+=($!)
sed -e "s/$VIA_LIFEBOAT/$LIFEBOAT_503/" "$work/lifeboat.toml" > "$work/lifeboat-degraded.toml"
printf '[shedding]\nmode = "degraded"\n' >> "$work/lifeboat-degraded.toml"
taskset -c 1 ./target/release/lifeboat run --config "$work/lifeboat-degraded.toml" & pids+=($!)
for port in $ORIGIN $VIA_NGINX $VIA_HAPROXY $VIA_LIFEBOAT $NGINX_503 $LIFEBOAT_503; do
  for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$port/1k.bin" && break; sleep 0.05; done
done

# wrk prints "Requests/sec: N" and "Transfer/sec: N{KB,MB,GB}".
measure() { # url [connections] [expected-non-2xx: yes] -> "req/s MiB/s"
  local out
  out=$(taskset -c 0 wrk -t1 -c"${2:-$CONNS}" -d"${SECS}s" --timeout 10s "$1" 2>/dev/null)
  if [[ -z "${3:-}" ]] && grep -q "Non-2xx" <<<"$out"; then
    echo "error: $1 answered with non-2xx responses; the figures would be meaningless" >&2
    grep -E "Non-2xx|requests in" <<<"$out" >&2
    exit 1
  fi
  if grep -q "Socket errors" <<<"$out"; then echo "warning: $1: $(grep 'Socket errors' <<<"$out")" >&2; fi
  awk '
    /Requests\/sec/ {rps=$2}
    /Transfer\/sec/ {v=$2; u=substr(v,length(v)-1); n=substr(v,1,length(v)-2)+0;
      if (u=="GB") n*=1024; else if (u=="KB") n/=1024; else if (u!="MB") n=v/1048576; mib=n}
    END {printf "%s %.1f\n", rps+0, mib+0}' <<<"$out"
}

declare -A rps mib
targets=(direct nginx haproxy lifeboat)
port_of() { case $1 in direct) echo $ORIGIN;; nginx) echo $VIA_NGINX;; haproxy) echo $VIA_HAPROXY;; lifeboat) echo $VIA_LIFEBOAT;; esac; }
for r in $(seq "$ROUNDS"); do
  for t in "${targets[@]}"; do
    read -r q _ <<<"$(measure "http://127.0.0.1:$(port_of "$t")/1k.bin")"; rps[$t]+="$q "
    read -r _ m <<<"$(measure "http://127.0.0.1:$(port_of "$t")/10m.bin" 4)"; mib[$t]+="$m "
    echo "  round $r $t: 1KiB $q req/s, 10MiB $m MiB/s" >&2
  done
  read -r q _ <<<"$(measure "http://127.0.0.1:$NGINX_503/" "$CONNS" yes)"; rps[nginx503]+="$q "
  read -r q _ <<<"$(measure "http://127.0.0.1:$LIFEBOAT_503/" "$CONNS" yes)"; rps[lifeboat503]+="$q "
  echo "  round $r 503: nginx $(echo "${rps[nginx503]}" | awk '{print $NF}') req/s, lifeboat apology $q req/s" >&2
  echo "round $r/$ROUNDS done" >&2
done

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
echo
echo "wrk -t1 -c$CONNS -d${SECS}s, $ROUNDS interleaved rounds, medians; wrk on CPU 0, origin + proxy on CPU 1"
printf '| target | 1 KiB req/s | ratio to direct | 10 MiB MiB/s | ratio to direct |\n|---|---|---|---|---|\n'
d_rps=$(echo "${rps[direct]}" | median); d_mib=$(echo "${mib[direct]}" | median)
for t in "${targets[@]}"; do
  q=$(echo "${rps[$t]}" | median); m=$(echo "${mib[$t]}" | median)
  printf '| %s | %.0f | %.2f | %.0f | %.2f |\n' "$t" "$q" "$(echo "$q / $d_rps" | bc -l)" "$m" "$(echo "$m / $d_mib" | bc -l)"
done
l=$(echo "${rps[lifeboat]}" | median); n=$(echo "${rps[nginx]}" | median); h=$(echo "${mib[haproxy]}" | median); lm=$(echo "${mib[lifeboat]}" | median)
printf '\nlifeboat / nginx (1 KiB req/s): %.2f   (target >= 1.10)\n' "$(echo "$l / $n" | bc -l)"
printf 'lifeboat / haproxy (10 MiB MiB/s): %.2f   (target >= 1.00)\n' "$(echo "$lm / $h" | bc -l)"
n5=$(echo "${rps[nginx503]}" | median); l5=$(echo "${rps[lifeboat503]}" | median)
printf 'nginx static 503: %.0f req/s; lifeboat apology: %.0f req/s\n' "$n5" "$l5"
printf 'lifeboat apology / nginx 503: %.2f   (target >= 1.00)\n' "$(echo "$l5 / $n5" | bc -l)"
