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
# Installs nginx, haproxy and wrk from Debian's packages if missing.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS=${1:-5}
SECS=${2:-5}
CONNS=${CONNS:-32}
BASE=${BASE_PORT:-18000}

cargo build --release --locked --bin lifeboat >&2
LIFEBOAT=./target/release/lifeboat
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

declare -A rps mib served
targets=(direct nginx haproxy lifeboat)
# LOGS_ONLY=1: only what the access-log figures need (nginx and lifeboat,
# 1 KiB and 503, logs off and on), in about half the time.
[[ -n "${LOGS_ONLY:-}" ]] && targets=(nginx lifeboat)
port_of() { case $1 in direct) echo $ORIGIN;; nginx) echo $VIA_NGINX;; haproxy) echo $VIA_HAPROXY;; lifeboat) echo $VIA_LIFEBOAT;; esac; }
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
    if [[ $t == nginx || $t == lifeboat ]]; then
      measure_log_on "${t}_log"; line+=" (log on: $(last "${t}_log"))"
    fi
    if [[ -z "${LOGS_ONLY:-}" ]]; then
      read -r _ m _ <<<"$(measure "http://127.0.0.1:$(port_of "$t")/10m.bin" 4)"; mib[$t]+="$m "
      line+=", 10MiB $m MiB/s"
    fi
    echo "$line" >&2
  done
  read -r q _ <<<"$(measure "http://127.0.0.1:$NGINX_503/" "$CONNS" yes)"; rps[nginx503]+="$q "
  measure_log_on nginx503_log
  read -r q _ <<<"$(measure "http://127.0.0.1:$LIFEBOAT_503/" "$CONNS" yes)"; rps[lifeboat503]+="$q "
  measure_log_on lifeboat503_log
  echo "  round $r 503: nginx $(last nginx503) (log on: $(last nginx503_log)) req/s, lifeboat apology $(last lifeboat503) (log on: $(last lifeboat503_log)) req/s" >&2
  echo "round $r/$ROUNDS done" >&2
done

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
echo
echo "wrk -t1 -c$CONNS -d${SECS}s, $ROUNDS interleaved rounds, medians; wrk on CPU 0, origin + proxy on CPU 1"
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
