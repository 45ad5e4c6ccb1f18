#!/usr/bin/env bash
# Side-by-side: direct to an nginx origin, via nginx, via HAProxy and via
# lifeboat, plus nginx `return 503` vs lifeboat's error page, measured with wrk
# in interleaved rounds; nginx and lifeboat are measured again with their
# access logs on (to a file), proxying 1 KiB and answering 503, each right
# after the same target with its log off. Load generator pinned to CPU 0,
# origin + proxy to CPU 1. All traffic on 127.0.0.1; every run is bounded by
# wrk's duration.
#
# usage: benches/compare/run.sh [ROUNDS] [SECONDS]      (default 5 rounds x 5 s)
#        LOGS_ONLY=1 benches/compare/run.sh 3 4         (the access-log figures only)
#        FLOOR=1 benches/compare/run.sh 5 5             (and the bare hyper proxies)
#        FLOOR_ONLY=1 benches/compare/run.sh 3 5        (the floor figures only)
# FLOOR=1 adds examples/hyper_floor.rs, the leanest proxy hyper allows, as
# targets hyper_conn (an origin connection per client connection) and
# hyper_pool (hyper-util's pooled client, lifeboat's), and a table of every
# proxy against HAProxy and nginx: how near a proxy that keeps hyper can come
# to them. FLOOR_ONLY=1 measures only that table's 1 KiB figures.
# Builds into $CARGO_TARGET_DIR when it is set, ./target otherwise.
# Installs nginx, haproxy and wrk from Debian's packages if missing.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS=${1:-5}
SECS=${2:-5}
CONNS=${CONNS:-32}
BASE=${BASE_PORT:-18000}

declare -A rps mib served
targets=(direct nginx haproxy lifeboat)
# LOGS_ONLY=1: only what the access-log figures need (nginx and lifeboat,
# 1 KiB and 503, logs off and on), in about half the time.
[[ -n "${LOGS_ONLY:-}" ]] && targets=(nginx lifeboat)
# floor: "yes" with FLOOR=1 (not with LOGS_ONLY, which has no HAProxy to
# set the floor against), "only" with FLOOR_ONLY=1 (1 KiB, no log-on rows,
# no 503s), empty otherwise.
floor=
if [[ -n "${FLOOR_ONLY:-}" ]]; then
  floor=only; targets=(nginx haproxy lifeboat hyper_conn hyper_pool)
elif [[ -n "${FLOOR:-}" && -z "${LOGS_ONLY:-}" ]]; then
  floor=yes; targets+=(hyper_conn hyper_pool)
fi

# LIFEBOAT_BEFORE=path: another lifeboat binary (an earlier commit's) as the
# target "before", proxying and apologising beside this one in every round.
[[ -n "${LIFEBOAT_BEFORE:-}" ]] && targets+=(before)

target_dir=${CARGO_TARGET_DIR:-target}
if [[ -n $floor ]]; then
  cargo build --release --locked --bin lifeboat --example hyper_floor >&2
  HYPER_FLOOR=$target_dir/release/examples/hyper_floor
else
  cargo build --release --locked --bin lifeboat >&2
fi
LIFEBOAT=$target_dir/release/lifeboat
# shellcheck source=benches/compare/anchors.sh
source benches/compare/anchors.sh

# wrk prints "Requests/sec: N", "Transfer/sec: N{KB,MB,GB}" and "N requests in".
measure() { # url [connections] [expected-non-2xx: yes] -> "req/s MiB/s requests"
  local out
  out=$(taskset -c 0 wrk -t1 -c"${2:-$CONNS}" -d"${SECS}s" --timeout 10s "$1" 2>/dev/null)
  if [[ -z "${3:-}" ]] && grep -q "Non-2xx" <<<"$out"; then
    echo "error: $1 answered with non-2xx responses; the figures would be meaningless" >&2
    grep -E "Non-2xx|requests in" <<<"$out" >&2
    exit 1
  fi
  if grep -q "Socket errors" <<<"$out"; then echo "warning: $1: $(grep 'Socket errors' <<<"$out")" >&2; fi
  awk '
    /requests in/ {reqs=$1}
    /Requests\/sec/ {rps=$2}
    /Transfer\/sec/ {v=$2; u=substr(v,length(v)-1); n=substr(v,1,length(v)-2)+0;
      if (u=="GB") n*=1024; else if (u=="KB") n/=1024; else if (u!="MB") n=v/1048576; mib=n}
    END {printf "%s %.1f %d\n", rps+0, mib+0, reqs+0}' <<<"$out"
}

port_of() { case $1 in direct) echo $ORIGIN;; nginx) echo $VIA_NGINX;; haproxy) echo $VIA_HAPROXY;; lifeboat) echo $VIA_LIFEBOAT;;
  hyper_conn) echo "$VIA_HYPER_CONN";; hyper_pool) echo "$VIA_HYPER_POOL";; before) echo "$VIA_BEFORE";; esac; }
log_port_of() { case $1 in nginx_log) echo $VIA_NGINX_LOG;; lifeboat_log) echo $VIA_LIFEBOAT_LOG;; nginx503_log) echo $NGINX_503_LOG;; lifeboat503_log) echo $LIFEBOAT_503_LOG;; esac; }
last() { echo "${rps[$1]}" | awk '{print $NF}'; }
measure_log_on() { # key: measured right after its log-off twin, same round
  local ok= q reqs
  case $1 in *503*) ok=yes;; esac
  read -r q _ reqs <<<"$(measure "http://127.0.0.1:$(log_port_of "$1")/1k.bin" "$CONNS" "$ok")"
  rps[$1]+="$q "; served[$1]=$(( ${served[$1]:-0} + reqs ))
}
for r in $(seq "$ROUNDS"); do
  for t in "${targets[@]}"; do
    read -r q _ <<<"$(measure "http://127.0.0.1:$(port_of "$t")/1k.bin")"; rps[$t]+="$q "
    line="  round $r $t: 1KiB $q req/s"
    if [[ ($t == nginx || $t == lifeboat) && $floor != only ]]; then
      measure_log_on "${t}_log"; line+=" (log on: $(last "${t}_log"))"
    fi
    if [[ -z "${LOGS_ONLY:-}" && $floor != only ]]; then
      read -r _ m _ <<<"$(measure "http://127.0.0.1:$(port_of "$t")/10m.bin" 4)"; mib[$t]+="$m "
      line+=", 10MiB $m MiB/s"
    fi
    echo "$line" >&2
  done
  if [[ $floor == only ]]; then echo "round $r/$ROUNDS done" >&2; continue; fi
  read -r q _ <<<"$(measure "http://127.0.0.1:$NGINX_503/" "$CONNS" yes)"; rps[nginx503]+="$q "
  measure_log_on nginx503_log
  read -r q _ <<<"$(measure "http://127.0.0.1:$LIFEBOAT_503/" "$CONNS" yes)"; rps[lifeboat503]+="$q "
  measure_log_on lifeboat503_log
  if [[ -n "${LIFEBOAT_BEFORE:-}" ]]; then
    read -r q _ <<<"$(measure "http://127.0.0.1:$BEFORE_503/" "$CONNS" yes)"; rps[before503]+="$q "
    echo "  round $r 503: before's apology $q req/s" >&2
  fi
  echo "  round $r 503: nginx $(last nginx503) (log on: $(last nginx503_log)) req/s, lifeboat apology $(last lifeboat503) (log on: $(last lifeboat503_log)) req/s" >&2
  echo "round $r/$ROUNDS done" >&2
done

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
# The floor: every proxy against HAProxy and nginx (1 KiB req/s, and 10 MiB
# MiB/s when measured), then the ratios issue #15 turns on, each as a ratio
# of medians and round by round (a ratio of medians can hide a bimodal round).
floor_table() {
  local h n hm nm t q m
  h=$(echo "${rps[haproxy]}" | median); n=$(echo "${rps[nginx]}" | median)
  echo
  echo "the floor: bare hyper proxies (examples/hyper_floor.rs) beside HAProxy and nginx, same run, medians:"
  if [[ $floor == only ]]; then
    printf '| target | 1 KiB req/s | / haproxy | / nginx |\n|---|---|---|---|\n'
  else
    hm=$(echo "${mib[haproxy]}" | median); nm=$(echo "${mib[nginx]}" | median)
    printf '| target | 1 KiB req/s | / haproxy | / nginx | 10 MiB MiB/s | / haproxy | / nginx |\n|---|---|---|---|---|---|---|\n'
  fi
  for t in haproxy nginx lifeboat hyper_conn hyper_pool; do
    q=$(echo "${rps[$t]}" | median)
    printf '| %s | %.0f | %.2f | %.2f |' "$t" "$q" "$(echo "$q / $h" | bc -l)" "$(echo "$q / $n" | bc -l)"
    if [[ $floor != only ]]; then
      m=$(echo "${mib[$t]}" | median)
      printf ' %.0f | %.2f | %.2f |' "$m" "$(echo "$m / $hm" | bc -l)" "$(echo "$m / $nm" | bc -l)"
    fi
    echo
  done
  floor_ratio hyper_conn haproxy "(>= 1.00: HAProxy's rate is reachable with hyper)"
  floor_ratio hyper_pool haproxy "(the client lifeboat uses)"
  floor_ratio lifeboat hyper_pool "(what lifeboat's own layers cost)"
  floor_ratio hyper_conn nginx "(>= 0.90: nginx's target is reachable with hyper)"
}
floor_ratio() { # a b why -> "a / b (1 KiB req/s): median ratio  why", then round by round
  printf '%s / %s (1 KiB req/s): %.2f   %s\n' "$1" "$2" \
    "$(echo "$(echo "${rps[$1]}" | median) / $(echo "${rps[$2]}" | median)" | bc -l)" "$3"
  paste -d' ' <(tr ' ' '\n' <<<"${rps[$1]}" | grep -v '^$') <(tr ' ' '\n' <<<"${rps[$2]}" | grep -v '^$') \
    | awk '{printf "%s%.2f", (NR > 1 ? ", " : "  by round: "), $1 / $2} END {print ""}'
}
# This lifeboat against the one it changed, same run.
before_table() {
  echo
  echo "lifeboat against LIFEBOAT_BEFORE ($LIFEBOAT_BEFORE), same run:"
  floor_ratio lifeboat before "(1.00: no change)"
  if [[ -n "${mib[before]:-}" ]]; then
    printf 'lifeboat / before (10 MiB MiB/s): %.2f\n' \
      "$(echo "$(echo "${mib[lifeboat]}" | median) / $(echo "${mib[before]}" | median)" | bc -l)"
  fi
  if [[ -n "${rps[before503]:-}" ]]; then
    floor_ratio lifeboat503 before503 "(the apology)"
  fi
}
echo
echo "wrk -t1 -c$CONNS -d${SECS}s, $ROUNDS interleaved rounds, medians; wrk on CPU 0, origin + proxy on CPU 1"
if [[ $floor == only ]]; then
  floor_table
  if [[ -n "${LIFEBOAT_BEFORE:-}" ]]; then before_table; fi
  exit 0
fi
l=$(echo "${rps[lifeboat]}" | median); n=$(echo "${rps[nginx]}" | median)
if [[ -z "${LOGS_ONLY:-}" ]]; then
  printf '| target | 1 KiB req/s | ratio to direct | 10 MiB MiB/s | ratio to direct |\n|---|---|---|---|---|\n'
  d_rps=$(echo "${rps[direct]}" | median); d_mib=$(echo "${mib[direct]}" | median)
  for t in "${targets[@]}"; do
    q=$(echo "${rps[$t]}" | median); m=$(echo "${mib[$t]}" | median)
    printf '| %s | %.0f | %.2f | %.0f | %.2f |\n' "$t" "$q" "$(echo "$q / $d_rps" | bc -l)" "$m" "$(echo "$m / $d_mib" | bc -l)"
  done
  h=$(echo "${mib[haproxy]}" | median); lm=$(echo "${mib[lifeboat]}" | median)
  printf '\nlifeboat / nginx (1 KiB req/s): %.2f   (target >= 1.10)\n' "$(echo "$l / $n" | bc -l)"
  # Round by round too: nginx is sometimes bimodal on this shared box, and a
  # ratio of medians can hide that.
  paste -d' ' <(tr ' ' '\n' <<<"${rps[lifeboat]}" | grep -v '^$') <(tr ' ' '\n' <<<"${rps[nginx]}" | grep -v '^$') \
    | awk '{printf "%s%.2f", (NR > 1 ? ", " : "  by round: "), $1 / $2} END {print ""}'
  printf 'lifeboat / haproxy (10 MiB MiB/s): %.2f   (target >= 1.00)\n' "$(echo "$lm / $h" | bc -l)"
fi
n5=$(echo "${rps[nginx503]}" | median); l5=$(echo "${rps[lifeboat503]}" | median)
printf 'nginx static 503: %.0f req/s; lifeboat apology: %.0f req/s\n' "$n5" "$l5"
printf 'lifeboat apology / nginx 503: %.2f   (target >= 1.00)\n' "$(echo "$l5 / $n5" | bc -l)"

# Access logs: the same targets with the log on (to a file) and off.
sleep 0.5   # lifeboat's last access lines, written every 100 ms
echo
echo "access logs on (to a file) vs off, same run, medians:"
printf '| target | log off req/s | log on req/s | on / off | lines written / requests served (log on) |\n|---|---|---|---|---|\n'
log_row() { # label off-key on-key access-log-file
  local off on lines
  off=$(echo "${rps[$2]}" | median); on=$(echo "${rps[$3]}" | median)
  lines=$(wc -l <"$work/logs/$4" 2>/dev/null || echo 0)
  printf '| %s | %.0f | %.0f | %.2f | %s / %s |\n' "$1" "$off" "$on" "$(echo "$on / $off" | bc -l)" "$lines" "${served[$3]}"
}
log_row "nginx, 1 KiB proxied" nginx nginx_log nginx-proxy-access.log
log_row "lifeboat, 1 KiB proxied" lifeboat lifeboat_log lifeboat-proxy-access.log
log_row "nginx static 503" nginx503 nginx503_log nginx-503-access.log
log_row "lifeboat apology (degraded)" lifeboat503 lifeboat503_log lifeboat-503-access.log
l5on=$(echo "${rps[lifeboat503_log]}" | median); n5on=$(echo "${rps[nginx503_log]}" | median)
l1on=$(echo "${rps[lifeboat_log]}" | median)
printf 'lifeboat apology, log on / log off: %.2f   (target >= 0.90)\n' "$(echo "$l5on / $l5" | bc -l)"
paste -d' ' <(tr ' ' '\n' <<<"${rps[lifeboat503_log]}" | grep -v '^$') <(tr ' ' '\n' <<<"${rps[lifeboat503]}" | grep -v '^$') \
  | awk '{printf "%s%.2f", (NR > 1 ? ", " : "  by round: "), $1 / $2} END {print ""}'
printf 'lifeboat apology log on / nginx static 503 log on: %.2f   (target >= 1.00)\n' "$(echo "$l5on / $n5on" | bc -l)"
printf 'lifeboat 1 KiB proxied, log on / log off: %.2f   (target >= 0.90)\n' "$(echo "$l1on / $l" | bc -l)"
paste -d' ' <(tr ' ' '\n' <<<"${rps[lifeboat_log]}" | grep -v '^$') <(tr ' ' '\n' <<<"${rps[lifeboat]}" | grep -v '^$') \
  | awk '{printf "%s%.2f", (NR > 1 ? ", " : "  by round: "), $1 / $2} END {print ""}'
if [[ $floor == yes ]]; then floor_table; fi
if [[ -n "${LIFEBOAT_BEFORE:-}" ]]; then before_table; fi
