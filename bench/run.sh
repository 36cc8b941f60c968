#!/usr/bin/env bash
# tokend end-to-end benchmarks (issue 5). Results: one JSON line per row on
# stdout (and in bench/out/<date>-<db>.jsonl); BENCHMARKS.md quotes them.
#
#   bench/run.sh e2e sqlite|postgres      # no-op baseline, Lookup, Get, List; RSS; writes per flush
#   bench/run.sh list sqlite|postgres     # List over 1,000,000 seeded tokens, per filter and sort; RSS with a warm 100k cache
#   bench/run.sh lag sqlite|postgres      # revocation lag across two replicas, default settings (TRIALS, default 200)
#   bench/run.sh fleet sqlite|postgres    # issue 16.5: 1M tokens seeded (once, kept in $BENCH_FLEET_DIR); Lookups
#                                         # uniform over 100k known secrets at 16 and 128 in flight (cold pass, then
#                                         # warm, hit ratio), one token warm, malformed, unknown id, wrong secret,
#                                         # Get, List 20, each a ratio to the no-op run in alternation
#                                         # with it (bench/paired.py); RSS with
#                                         # 100k and 1M cached credentials
#
# Needs: a release build (`cargo build --release --bins --examples`), and for
# postgres a server at $BENCH_PG (default postgres://postgres@127.0.0.1:5432).
# Load generator and server share the machine; each row is also reported as
# a ratio to the no-op baseline measured in the same run.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:?e2e or list}; db=${2:?sqlite or postgres}
DURATION=${DURATION:-10s}; CONC=${CONC:-16}
BIN=target/release/tokend; EX=target/release/examples
PG=${BENCH_PG:-postgres://postgres@127.0.0.1:5432}
work=$(mktemp -d); mkdir -p bench/out
out=bench/out/$(date -u +%Y%m%d)-$mode-$db.jsonl; : > "$out"
port=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
mport=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
emit() { echo "$1" | tee -a "$out"; }
rss() { awk -v what="$2" '$1==what":" {print $2}' /proc/"$1"/status; }
metric() { curl -s "http://127.0.0.1:$mport/metrics" | awk -v m="$1" '$1==m {print $2}'; }

case "$db:$mode" in
  sqlite:e2e|sqlite:lag) url="sqlite://$work/tokend.db?mode=rwc" ;;
  postgres:e2e|postgres:lag) name=tokend_bench_$$; psql "$PG/postgres" -qc "CREATE DATABASE $name"; url="$PG/$name" ;;
  sqlite:list) url="sqlite://${BENCH_SEEDED_SQLITE:-/tmp/seed1/tokend.db}?mode=rwc" ;;
  sqlite:fleet) fleet=${BENCH_FLEET_DIR:-/tmp/fleet}/sqlite; mkdir -p "$fleet"; url="sqlite://$fleet/tokend.db?mode=rwc" ;;
  postgres:fleet) fleet=${BENCH_FLEET_DIR:-/tmp/fleet}/postgres; mkdir -p "$fleet"; url="$PG/tokend_fleet1m"
    [ -f "$fleet/owner.txt" ] || { psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS tokend_fleet1m WITH (FORCE)"; psql "$PG/postgres" -qc "CREATE DATABASE tokend_fleet1m"; } ;;
  postgres:list) url="$PG/${BENCH_SEEDED_PG:-tokend_seed1m}" ;;
esac
export TOKEND_DATABASE_URL=$url

serve() {
  "$BIN" serve --listen "127.0.0.1:$port" --metrics-listen "127.0.0.1:$mport" \
    --auth-failure-threshold 0 --usage-flush-interval 5s --database-max-connections 10 \
    --log-format json "$@" 2>"$work/server.log" &
  pid=$!
  for _ in $(seq 1 100); do
    curl -sf "http://127.0.0.1:$mport/metrics" >/dev/null && return 0; sleep 0.1
  done
  echo "server did not start" >&2; cat "$work/server.log" >&2; exit 1
}
load() { "$EX/loadgen" --addr "http://127.0.0.1:$port" "$@"; }

# The row `$2` (a loadgen line) with its ratio to the no-op line `$1`.
ratio() { python3 -c 'import json,sys; n=json.loads(sys.argv[1]); r=json.loads(sys.argv[2]); r["ratio_to_noop"]=round(r["rps"]/n["rps"],3); print(json.dumps(r))' "$1" "$2"; }
counter() { metric "$1" | head -1; }

if [ "$mode" = fleet ]; then
  if [ ! -f "$fleet/owner.txt" ]; then
    # Every token's secret is kept (expired ones too: Lookup by another
    # caller still finds them), so that 1M distinct credentials can be cached.
    started=$(date +%s)
    "$EX/seed" --tokens "${FLEET_TOKENS:-1000000}" --secrets "${FLEET_TOKENS:-1000000}" --all-secrets \
      --secrets-out "$fleet/secrets.txt" | tail -1 > "$fleet/owner.txt"
    emit "{\"row\":\"seed\",\"db\":\"$db\",\"tokens\":${FLEET_TOKENS:-1000000},\"seconds\":$(( $(date +%s) - started ))}"
  fi
  export LOADGEN_SECRET=$(cat "$fleet/owner.txt")
  head -n "${FLEET_KNOWN:-100000}" "$fleet/secrets.txt" > "$work/known.txt"
  "$BIN" migrate
  serve --auth-cache-capacity 1100000 --max-in-flight-per-client 0 # 128 in flight from one load generator
  until [ "$(metric tokend_live_token_ids)" != "-1" ] && [ -n "$(metric tokend_live_token_ids)" ]; do sleep 0.2; done
  emit "{\"row\":\"rss_idle_kb\",\"db\":\"$db\",\"live_token_ids\":$(metric tokend_live_token_ids),\"vmrss\":$(rss $pid VmRSS),\"vmhwm\":$(rss $pid VmHWM)}"
  # Every row is a ratio to the no-op measured in alternation with it
  # (bench/paired.py: PAIRS short pairs, the median ratio and its spread):
  # the machine is shared and its speed drifts within a sitting.
  noop() { local line; line=$(load --scenario noop --concurrency "$1" --duration "$DURATION" --label "$db noop c$1"); emit "$line"; echo "$line" > "$work/noop"; }
  paired() { python3 bench/paired.py "$EX/loadgen" "http://127.0.0.1:$port" "$@"; }
  noop 16
  # Cold: every secret of the known set once (each a miss).
  cold=$(load --scenario warm-cache --secrets-file "$work/known.txt" --concurrency 16)
  emit "{\"row\":\"fleet_cold_c16\",\"db\":\"$db\",\"warm\":$cold,\"rps\":$(python3 -c "import json,sys; w=json.loads(sys.argv[1]); print(round(w['secrets']/w['seconds']))" "$cold"),\"noop_rps\":$(python3 -c "import json,sys; print(json.loads(sys.argv[1])['rps'])" "$(cat "$work/noop")")}"
  for c in 16 128; do
    h0=$(counter tokend_auth_cache_hits_total); m0=$(counter tokend_auth_cache_misses_total)
    line=$(paired fleet "$c" "$db fleet c$c" --secrets-file "$work/known.txt")
    h1=$(counter tokend_auth_cache_hits_total); m1=$(counter tokend_auth_cache_misses_total)
    emit "$(echo "$line" | python3 -c "import json,sys; r=json.load(sys.stdin); h=$h1-$h0; m=$m1-$m0; r['cache_hit_ratio']=round(h/(h+m),4) if h+m else None; print(json.dumps(r))")"
  done
  for s in lookup-warm malformed lookup-unknown wrong-secret get list; do
    emit "$(paired $s 16 "$db $s c16")"
  done
  emit "{\"row\":\"rss_100k_cached_kb\",\"db\":\"$db\",\"cache_entries\":$(metric tokend_auth_cache_entries),\"vmrss\":$(rss $pid VmRSS),\"vmhwm\":$(rss $pid VmHWM)}"
  emit "$(load --scenario warm-cache --secrets-file "$fleet/secrets.txt" --concurrency 16)"
  emit "{\"row\":\"rss_1m_cached_kb\",\"db\":\"$db\",\"cache_entries\":$(metric tokend_auth_cache_entries),\"vmrss\":$(rss $pid VmRSS),\"vmhwm\":$(rss $pid VmHWM)}"
  kill -TERM $pid; wait $pid || true; pid=
elif [ "$mode" = lag ]; then
  # Two replicas with default settings (5-minute cache TTL, change feed on).
  "$BIN" migrate
  secret=$("$BIN" token create --org org-bench --name bench --type ORGANIZATION --role ORGANIZATION_OWNER | tail -1)
  port2=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
  serve
  # Throttling off on B: the benchmark's refused calls are failures by design.
  "$BIN" serve --listen "127.0.0.1:$port2" --auth-failure-threshold 0 --log-format json 2>"$work/server2.log" &
  pid2=$!
  sleep 1
  emit "$(LOADGEN_SECRET=$secret "$EX/revocation_lag" --a "http://127.0.0.1:$port" --b "http://127.0.0.1:$port2" --trials "${TRIALS:-200}" | sed "s/^{/{\"db\":\"$db\",/")"
  kill -TERM $pid $pid2; wait $pid $pid2 || true; pid=
  [ "$db" = postgres ] && psql "$PG/postgres" -qc "DROP DATABASE $name WITH (FORCE)"
elif [ "$mode" = e2e ]; then
  "$BIN" migrate
  secret=$("$BIN" token create --org org-bench --name bench --type ORGANIZATION --role ORGANIZATION_OWNER | tail -1)
  export LOADGEN_SECRET=$secret
  serve; sleep 1
  emit "{\"row\":\"rss_idle_kb\",\"db\":\"$db\",\"vmrss\":$(rss $pid VmRSS),\"vmhwm\":$(rss $pid VmHWM)}"
  for i in $(seq 1 30); do load --scenario get --concurrency 1 --duration 200ms --warmup 0s >/dev/null; done # a few rows of usage
  for s in noop lookup-warm lookup-unknown malformed get list; do
    emit "$(load --scenario $s --concurrency "$CONC" --duration "$DURATION" --label "$db $s")"
  done
  emit "{\"row\":\"rss_after_load_kb\",\"db\":\"$db\",\"vmrss\":$(rss $pid VmRSS),\"vmhwm\":$(rss $pid VmHWM)}"
  # Writes per flush: 10 s of Lookups of one token at full speed; count the
  # usage statements the server issued (its own counter) and, on PostgreSQL,
  # the row updates the database saw.
  before=$(metric tokend_usage_writes_total); [ "$db" = postgres ] && pb=$(psql "$url" -Atc "select n_tup_upd from pg_stat_user_tables where relname='api_tokens'")
  line=$(load --scenario lookup-warm --concurrency "$CONC" --duration "$DURATION" --label "$db writes-per-flush")
  sleep 6
  after=$(metric tokend_usage_writes_total)
  extra=""
  if [ "$db" = postgres ]; then sleep 1; pa=$(psql "$url" -Atc "select n_tup_upd from pg_stat_user_tables where relname='api_tokens'"); extra=",\"pg_row_updates\":$((pa-pb))"; fi
  emit "{\"row\":\"writes_per_flush\",\"db\":\"$db\",\"load\":$line,\"flush_interval_s\":5,\"usage_statements\":$((after-before))$extra}"
  kill -TERM $pid; wait $pid || true; pid=
  [ "$db" = postgres ] && psql "$PG/postgres" -qc "DROP DATABASE $name WITH (FORCE)"
else
  owner=${BENCH_OWNER_SECRET:?secret of the seeded ORGANIZATION_OWNER}
  secrets=${BENCH_SECRETS_FILE:-/tmp/seed1/secrets.txt}
  export LOADGEN_SECRET=$owner
  "$BIN" migrate
  # A 30 s cache TTL (the most allowed) so the 100k warmed entries are all
  # still there when RSS is read.
  serve --auth-cache-ttl 30s; sleep 1
  emit "{\"row\":\"rss_idle_1m_kb\",\"db\":\"$db\",\"vmrss\":$(rss $pid VmRSS),\"vmhwm\":$(rss $pid VmHWM)}"
  L="--scenario list --concurrency 1 --duration ${LIST_DURATION:-10s} --org org-bench"
  emit "$(load $L --label "$db none name:asc" --sort name:asc)"
  emit "$(load $L --label "$db workspaceId createdAt:desc" --workspace-id ws-7 --sort createdAt:desc)"
  emit "$(load $L --label "$db deploymentId updatedAt:asc" --deployment-id dep-42 --sort updatedAt:asc)"
  emit "$(load $L --label "$db dagId name:desc" --dag-id dag-42 --sort name:desc)"
  emit "$(load $L --label "$db dagTags description:asc" --dag-tag tag-7 --sort description:asc)"
  emit "$(load $L --label "$db onlyOrg description:asc" --only-org --sort description:asc)"
  emit "$(load $L --label "$db kind tokenStartAt:desc" --kind DIRECT_ACCESS --sort tokenStartAt:desc)"
  emit "$(load --scenario list --concurrency 16 --duration "$DURATION" --org org-bench --label "$db c16 workspaceId name:asc" --workspace-id ws-7 --sort name:asc)"
  # Warm a 100k-entry cache, then load it.
  load --scenario warm-cache --secrets-file "$secrets" --concurrency 16 --duration 120s --label warm >/dev/null
  emit "$(load --scenario lookup-warm --concurrency 16 --duration "$DURATION" --label "$db lookup-warm 1M db, 100k cache")"
  emit "{\"row\":\"rss_1m_warm_100k_kb\",\"db\":\"$db\",\"cache_entries\":$(metric tokend_auth_cache_entries),\"vmrss\":$(rss $pid VmRSS),\"vmhwm\":$(rss $pid VmHWM)}"
  kill -TERM $pid; wait $pid || true; pid=
fi
