#!/usr/bin/env bash
# Where the server's CPU goes under one loadgen scenario: `perf record` of
# the server (and, on PostgreSQL, how much CPU the database's backends took
# in the same seconds), kept as a flat top-N in bench/out, so that a
# "target missed" paragraph of BENCHMARKS.md cites a profile, not a memory.
#
#   bench/profile.sh postgres|sqlite SCENARIO [loadgen args...]
#   e.g. bench/profile.sh postgres get
#        bench/profile.sh sqlite fleet --secrets-file /tmp/fleet/sqlite/known.txt
#
# Uses the fleet database of `bench/run.sh fleet` (1M tokens, $BENCH_FLEET_DIR,
# default /tmp/fleet); needs the release build and `perf`.
set -euo pipefail
cd "$(dirname "$0")/.."
db=${1:?sqlite or postgres}; scenario=${2:?loadgen scenario}; shift 2
SECONDS_=${PROFILE_SECONDS:-10}; CONC=${CONC:-16}
BIN=target/release/tokend; EX=target/release/examples
PG=${BENCH_PG:-postgres://postgres@127.0.0.1:5432}
fleet=${BENCH_FLEET_DIR:-/tmp/fleet}/$db
case "$db" in
  sqlite) export TOKEND_DATABASE_URL="sqlite://$fleet/tokend.db?mode=rwc" ;;
  postgres) export TOKEND_DATABASE_URL="$PG/tokend_fleet1m" ;;
esac
[ -f "$fleet/owner.txt" ] || { echo "no fleet database: run bench/run.sh fleet $db first" >&2; exit 1; }
export LOADGEN_SECRET=$(cat "$fleet/owner.txt")
work=$(mktemp -d); mkdir -p bench/out
out=bench/out/$(date -u +%Y%m%d)-profile-$db-$scenario.txt
port=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
"$BIN" serve --listen "127.0.0.1:$port" --auth-failure-threshold 0 --database-max-connections 10 \
  --auth-cache-capacity 1100000 --max-in-flight-per-client 0 --log-format json 2>"$work/server.log" &
pid=$!
sleep 3
load() { "$EX/loadgen" --addr "http://127.0.0.1:$port" "$@"; }
# Warm up (the cache, the pool, the database's buffers), then profile.
load --scenario "$scenario" --concurrency "$CONC" --duration 3s "$@" >/dev/null
pg_cpu() { [ "$db" = postgres ] && ps -C postgres -o cputimes= | awk '{s+=$1} END {print s+0}' || echo 0; }
tokend_cpu() { ps -p "$pid" -o cputimes= | tr -d ' '; }
pg0=$(pg_cpu); t0=$(tokend_cpu)
load --scenario "$scenario" --concurrency "$CONC" --duration "$((SECONDS_ + 2))s" "$@" > "$work/load.json" &
lp=$!
sleep 1
perf record -F 499 -g -p "$pid" -o "$work/perf.data" -- sleep "$SECONDS_" 2>/dev/null
wait $lp
pg1=$(pg_cpu); t1=$(tokend_cpu)
{
  echo "# bench/profile.sh $db $scenario $* ($(date -u +%FT%TZ), $(nproc) cores, load generator on the same machine)"
  echo "# load: $(cat "$work/load.json")"
  echo "# CPU seconds over the loaded run ($((SECONDS_ + 2)) s): tokend $((t1 - t0)), PostgreSQL backends $((pg1 - pg0))"
  echo "# self time by binary (perf report --no-children --sort dso):"
  perf report -i "$work/perf.data" --no-children --sort dso --stdio 2>/dev/null \
    | grep -E '^ +[0-9]' | sed 's/[[:space:]]*$//' | head -8
  echo "# self time of tokend's own binary by crate (first path segment of the symbol):"
  perf report -i "$work/perf.data" --no-children --dsos tokend --sort symbol --stdio 2>/dev/null \
    | grep -E '^ +[0-9]' | python3 -c '
import re, sys, collections
shares = collections.Counter()
for line in sys.stdin:
    m = re.match(r"\s*([0-9.]+)%\s+\[\.\]\s+(.*)", line)
    if not m:
        continue
    sym = m.group(2).strip()
    sym = re.sub(r"^<", "", sym)
    crate = re.split(r"::|<| as ", sym)[0] or sym
    shares[crate] += float(m.group(1))
for crate, share in shares.most_common(15):
    print(f"{share:7.2f}%  {crate}")
'
  echo "# top 30 symbols (self time, all binaries):"
  perf report -i "$work/perf.data" --no-children --sort dso,symbol --stdio 2>/dev/null \
    | grep -E '^ +[0-9]' | sed 's/[[:space:]]*-[[:space:]]*-[[:space:]]*$//; s/[[:space:]]*$//' | head -30
} | tee "$out"
