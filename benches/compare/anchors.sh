# Sourced by run.sh and profile.sh: installs what is missing, writes the
# configurations into a temporary directory and starts, pinned to CPU 1, an
# nginx origin serving 1k.bin and 10m.bin, nginx and HAProxy proxying to it,
# nginx's static 503, and four lifeboats (proxying, and degraded for the
# apology; each with its access log off, and on to a file). nginx's proxy
# and static 503 also answer on a second port with their access log on
# (nginx's default: the combined format, one write per request) to a file.
# With HYPER_FLOOR set (the path of the `hyper_floor` example's binary), also
# the two bare hyper proxies of examples/hyper_floor.rs, pinned to CPU 1 like
# lifeboat: the floor under lifeboat's data path.
# Everything stops when the sourcing script exits.
#
# Expects BASE (the first of ten ports; twelve with HYPER_FLOOR) and LIFEBOAT
# (the binary to run).
# Sets ORIGIN, VIA_NGINX, VIA_HAPROXY, VIA_LIFEBOAT, NGINX_503 and
# LIFEBOAT_503 (ports, access logs off), VIA_NGINX_LOG, VIA_LIFEBOAT_LOG,
# NGINX_503_LOG and LIFEBOAT_503_LOG (the same with access logs on, written
# to $work/logs/*access*.log), with HYPER_FLOOR VIA_HYPER_CONN and
# VIA_HYPER_POOL, `work` (the directory), `pids` (to stop) and PROXY_PID
# (nginx, haproxy, lifeboat, hyper_conn, hyper_pool: the process doing the
# proxying).

need=()
for tool in nginx haproxy wrk taskset pgrep curl; do command -v "$tool" >/dev/null || need+=("$tool"); done
if ((${#need[@]})); then
  echo "installing: nginx-light haproxy wrk util-linux procps curl" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light haproxy wrk util-linux procps curl >/dev/null
fi
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
VIA_NGINX_LOG=$((BASE+6)); VIA_LIFEBOAT_LOG=$((BASE+7)); NGINX_503_LOG=$((BASE+8)); LIFEBOAT_503_LOG=$((BASE+9))
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
# The same server twice, on two ports: the second with its access log on.
proxy_server() { # port access_log
  echo "server { listen 127.0.0.1:$1; access_log $2;
    location / { proxy_pass http://origin; proxy_http_version 1.1; proxy_set_header Connection \"\"; } }"
}
static503_server() { # port access_log
  echo "server { listen 127.0.0.1:$1; access_log $2;
    location / { root $work; error_page 503 /503.html; return 503; }
    location = /503.html { root $work; internal; } }"
}
nginx_conf proxy "upstream origin { server 127.0.0.1:$ORIGIN; keepalive 64; }
  $(proxy_server "$VIA_NGINX" off)
  $(proxy_server "$VIA_NGINX_LOG" "$work/logs/nginx-proxy-access.log")"
nginx_conf static503 "$(static503_server "$NGINX_503" off)
  $(static503_server "$NGINX_503_LOG" "$work/logs/nginx-503-access.log")"
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

# PROXY_PID maps a proxy to the process that does its work (nginx's master
# forks the worker, found below once it answers).
declare -A PROXY_PID
for n in origin proxy static503; do taskset -c 1 nginx -c "$work/nginx-$n.conf" & pids+=($!); done
NGINX_PROXY_MASTER=${pids[1]}
taskset -c 1 haproxy -f "$work/haproxy.cfg" & pids+=($!); PROXY_PID[haproxy]=$!
taskset -c 1 "$LIFEBOAT" run --config "$work/lifeboat.toml" & pids+=($!); PROXY_PID[lifeboat]=$!
# The degraded one answers every request with the apology; the client
# budget is off (one wrk address sends them all, and must get 503s, not 429s).
sed -e "s/$VIA_LIFEBOAT/$LIFEBOAT_503/" "$work/lifeboat.toml" > "$work/lifeboat-degraded.toml"
printf '[shedding]\nmode = "degraded"\nclient_budget = 0\n' >> "$work/lifeboat-degraded.toml"
taskset -c 1 "$LIFEBOAT" run --config "$work/lifeboat-degraded.toml" & pids+=($!)
# Access log on: lifeboat's defaults (level info, access = true), to a file.
log_on() { # config port name -> that config on another port, its access log on
  sed -e "s/^http = .*/http = \"127.0.0.1:$2\"/" -e 's/^level = .*/level = "info"/' \
      -e "s|^access = false|access = true\naccess_path = \"$work/logs/$3-access.log\"|" "$1"
}
log_on "$work/lifeboat.toml" "$VIA_LIFEBOAT_LOG" lifeboat-proxy > "$work/lifeboat-log.toml"
log_on "$work/lifeboat-degraded.toml" "$LIFEBOAT_503_LOG" lifeboat-503 > "$work/lifeboat-degraded-log.toml"
# Their other lines (startup, at info) go beside the access logs, not to the terminal.
taskset -c 1 "$LIFEBOAT" run --config "$work/lifeboat-log.toml" 2>"$work/logs/lifeboat-proxy.err" & pids+=($!)
taskset -c 1 "$LIFEBOAT" run --config "$work/lifeboat-degraded-log.toml" 2>"$work/logs/lifeboat-503.err" & pids+=($!)
floor_ports=()
if [[ -n "${HYPER_FLOOR:-}" ]]; then
  VIA_HYPER_CONN=$((BASE+10)); VIA_HYPER_POOL=$((BASE+11)); floor_ports=("$VIA_HYPER_CONN" "$VIA_HYPER_POOL")
  taskset -c 1 "$HYPER_FLOOR" conn "127.0.0.1:$VIA_HYPER_CONN" "127.0.0.1:$ORIGIN" & pids+=($!); PROXY_PID[hyper_conn]=$!
  taskset -c 1 "$HYPER_FLOOR" pool "127.0.0.1:$VIA_HYPER_POOL" "127.0.0.1:$ORIGIN" & pids+=($!); PROXY_PID[hyper_pool]=$!
fi
# With LIFEBOAT_BEFORE (another lifeboat binary, e.g. built from an earlier
# commit), the same two lifeboats (proxying, degraded) from it: a change is
# measured against what it changed, in the same run.
if [[ -n "${LIFEBOAT_BEFORE:-}" ]]; then
  VIA_BEFORE=$((BASE+12)); BEFORE_503=$((BASE+13)); floor_ports+=("$VIA_BEFORE")
  sed -e "s/$VIA_LIFEBOAT/$VIA_BEFORE/" "$work/lifeboat.toml" > "$work/before.toml"
  sed -e "s/$LIFEBOAT_503/$BEFORE_503/" "$work/lifeboat-degraded.toml" > "$work/before-degraded.toml"
  taskset -c 1 "$LIFEBOAT_BEFORE" run --config "$work/before.toml" & pids+=($!); PROXY_PID[before]=$!
  taskset -c 1 "$LIFEBOAT_BEFORE" run --config "$work/before-degraded.toml" & pids+=($!)
fi
for port in $ORIGIN $VIA_NGINX $VIA_HAPROXY $VIA_LIFEBOAT $NGINX_503 $LIFEBOAT_503 \
    $VIA_NGINX_LOG $VIA_LIFEBOAT_LOG $NGINX_503_LOG $LIFEBOAT_503_LOG "${floor_ports[@]}"; do
  for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$port/1k.bin" && break; sleep 0.05; done
done
PROXY_PID[nginx]=$(pgrep -P "$NGINX_PROXY_MASTER" | head -1)
# lifeboat learns the origin's limit upwards from 16 while it is pressed
# (src/admission/capacity.rs): a cold one sheds part of its first second.
# Every proxy gets the same 2 s of load before any figure is taken; then
# the access logs start empty, so their lines can be set against the
# requests measured.
for port in $VIA_NGINX $VIA_HAPROXY $VIA_LIFEBOAT $VIA_NGINX_LOG $VIA_LIFEBOAT_LOG "${floor_ports[@]}"; do
  taskset -c 0 wrk -t1 -c"${CONNS:-32}" -d2s "http://127.0.0.1:$port/1k.bin" >/dev/null 2>&1 || true
done
sleep 0.5   # lifeboat writes its access lines every 100 ms
for f in "$work"/logs/*access*.log; do : > "$f"; done
