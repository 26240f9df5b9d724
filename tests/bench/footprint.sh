#!/usr/bin/env bash
# Footprint: runs the demo gateway for DURATION seconds (default 60) on a fresh database
# and prints its peak resident set size (VmHWM from /proc), against the goal of 6 MB, its
# anonymous (the process's own) and file-backed RSS, and the resident kB of each mapped
# file (libraries), largest first.
# usage: tests/bench/footprint.sh [PATH_TO_SPRIG] [DURATION] [EXTRA sprig run FLAGS...]
# (e.g. `--listen off` to measure it without the HTTP API)
set -euo pipefail
sprig=${1:-./build/sprig}
duration=${2:-${DURATION:-60}}
shift $(( $# < 2 ? $# : 2 ))
dir=$(mktemp -d /tmp/sprig-footprint-XXXXXX)
pid=
cleanup() {
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    fi
    rm -rf "$dir"
}
trap cleanup EXIT

"$sprig" run --db "$dir/demo.db" --demo --listen 127.0.0.1:0 "$@" >/dev/null 2>"$dir/log" &
pid=$!
sleep "$duration"
if ! kill -0 "$pid" 2>/dev/null; then
    echo "footprint: sprig exited early:" >&2
    cat "$dir/log" >&2
    exit 1
fi
hwm=$(awk '/^VmHWM:/ {print $2}' "/proc/$pid/status")
rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status")
anon=$(awk '/^RssAnon:/ {print $2}' "/proc/$pid/status")
file=$(awk '/^RssFile:/ {print $2}' "/proc/$pid/status")
# Resident kB per mapped file (shared libraries and the binary), largest first: what of
# the RSS is library pages rather than the process's own memory.
libs=$(awk '/^[0-9a-f]+-[0-9a-f]+ / { name = (NF >= 6 ? $6 : "[anon]") }
            /^Rss:/ { kb[name] += $2 }
            END { for (n in kb) if (n ~ /^\//) printf "%d %s\n", kb[n], n }' \
       "/proc/$pid/smaps" | sort -rn | head -12 |
       awk '{ n = split($2, p, "/"); printf "  %6d kB  %s\n", $1, p[n] }')
points=$(sqlite3 "file:$dir/demo.db?mode=ro" "SELECT count(*) FROM history" 2>/dev/null || echo "?")
kill -TERM "$pid"
wait "$pid"
pid=
echo "footprint: demo gateway${*:+ ($*)} for ${duration} s: peak RSS ${hwm} kB, RSS now ${rss} kB" \
     "(anonymous ${anon} kB, file-backed ${file} kB), ${points} points in history" \
     "(goal: peak <= 6144 kB, anonymous <= 3072 kB; Simple IoT ~20 MB)"
echo "resident per mapped file, at the end:"
echo "$libs"
