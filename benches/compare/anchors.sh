# Sourced by run.sh and profile.sh: installs what is missing, writes the
# configurations into a temporary directory and starts, pinned to CPU 1, an
# nginx origin serving 1k.bin and 10m.bin, nginx and HAProxy proxying to it,
# nginx's static 503, and two lifeboats (proxying, and degraded for the
# apology). Everything stops when the sourcing script exits.
#
# Expects BASE (the first of six ports) and LIFEBOAT (the binary to run).
# Sets ORIGIN, VIA_NGINX, VIA_HAPROXY, VIA_LIFEBOAT, NGINX_503 and
# LIFEBOAT_503 (ports), `work` (the directory), `pids` (to stop) and
# PROXY_PID (nginx, haproxy, lifeboat: the process doing the proxying).

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

# PROXY_PID maps a proxy to the process that does its work (nginx's master
# forks the worker, found below once it answers).
declare -A PROXY_PID
for n in origin proxy static503; do taskset -c 1 nginx -c "$work/nginx-$n.conf" & pids+=($!); done
NGINX_PROXY_MASTER=${pids[1]}
taskset -c 1 haproxy -f "$work/haproxy.cfg" & pids+=($!); PROXY_PID[haproxy]=$!
taskset -c 1 "$LIFEBOAT" run --config "$work/lifeboat.toml" & pids+=($!); PROXY_PID[lifeboat]=$!
sed -e "s/$VIA_LIFEBOAT/$LIFEBOAT_503/" "$work/lifeboat.toml" > "$work/lifeboat-degraded.toml"
printf '[shedding]\nmode = "degraded"\n' >> "$work/lifeboat-degraded.toml"
taskset -c 1 "$LIFEBOAT" run --config "$work/lifeboat-degraded.toml" & pids+=($!)
for port in $ORIGIN $VIA_NGINX $VIA_HAPROXY $VIA_LIFEBOAT $NGINX_503 $LIFEBOAT_503; do
  for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$port/1k.bin" && break; sleep 0.05; done
done
PROXY_PID[nginx]=$(pgrep -P "$NGINX_PROXY_MASTER" | head -1)
