#!/usr/bin/env bash
# tokend soak (issue 6), opt-in: 10 minutes of mixed gRPC load on PostgreSQL
# with a rotate every 5 s and the database taken away in the middle; samples
# tokend's RSS every 10 s. BENCHMARKS.md quotes a run.
#
#   cargo build --release --bin tokend --example loadgen
#   bench/soak.sh                      # SOAK_SECONDS=600 SOAK_OUTAGE=15
#
# The outage (at half time, SOAK_OUTAGE seconds):
#   SOAK_RESTART=cluster   pg_ctlcluster stop/start: a real server restart
#                          (disturbs anything else using this PostgreSQL)
#   SOAK_RESTART=database  (default) the soak database refuses connections and
#                          its sessions are killed, then it is allowed again:
#                          what tokend sees of a restart, for this database only
# Prints one JSON line per load stream, the rotates, health around the
# outage, and RSS samples; writes them to bench/out/<date>-soak.jsonl.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_TOTAL=${SOAK_SECONDS:-600}; OUTAGE=${SOAK_OUTAGE:-15}; RESTART=${SOAK_RESTART:-database}
PG=${BENCH_PG:-postgres://postgres@127.0.0.1:5432}
BIN=target/release/tokend; EX=target/release/examples
GRPCURL=${GRPCURL:-$(command -v grpcurl || echo target/ci-tools/venv/bin/grpcurl)}
work=$(mktemp -d); mkdir -p bench/out
out=bench/out/$(date -u +%Y%m%d)-soak.jsonl; : > "$out"
free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
port=$(free_port); mport=$(free_port)
name=tokend_soak_$$
psql "$PG/postgres" -qc "CREATE DATABASE $name"
url="$PG/$name"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  psql "$PG/postgres" -qc "ALTER DATABASE $name ALLOW_CONNECTIONS true" 2>/dev/null || true
  psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS $name WITH (FORCE)" || true
  rm -rf "$work"
}
trap cleanup EXIT
emit() { echo "$1" | tee -a "$out"; }

secret=$("$BIN" --database-url "$url" token create --org org-soak --name soak --type ORGANIZATION \
  --role ORGANIZATION_OWNER --created-by soak | tail -n 1)
"$BIN" --database-url "$url" serve --listen "127.0.0.1:$port" --metrics-listen "127.0.0.1:$mport" \
  --auth-failure-threshold 0 --health-check-interval 1s --log-format json 2>"$work/server.log" &
server=$!; pids+=("$server")
for _ in $(seq 100); do "$GRPCURL" -plaintext "127.0.0.1:$port" grpc.health.v1.Health/Check >/dev/null 2>&1 && break; sleep 0.1; done
target=$("$GRPCURL" -plaintext -H "authorization: Bearer $secret" \
  -d '{"organizationId":"org-soak","name":"rotated","type":"ORGANIZATION","role":"ORGANIZATION_MEMBER"}' \
  "127.0.0.1:$port" tokend.v1.ApiTokenService/CreateApiToken | python3 -c 'import json,sys;print(json.load(sys.stdin)["id"])')

rss() { awk '$1=="VmRSS:" {print $2}' /proc/"$server"/status; }
start=$(date +%s)
( while kill -0 "$server" 2>/dev/null; do
    echo "{\"t\":$(( $(date +%s) - start )),\"rss_kb\":$(rss)}"; sleep 10
  done ) > "$work/rss.jsonl" &
pids+=("$!")

load() { # label, scenario, concurrency, extra args
  local label=$1 scenario=$2 conc=$3; shift 3
  "$EX/loadgen" --addr "http://127.0.0.1:$port" --scenario "$scenario" --secret "$secret" \
    --concurrency "$conc" --duration "${SECONDS_TOTAL}s" --warmup 0s --label "$label" "$@" \
    > "$work/load-$label.json" 2>&1 || true
}
workers=()
load lookup lookup-warm 8 & workers+=("$!")
load get get 4 & workers+=("$!")
load list list 2 --sort name:asc & workers+=("$!")
load unknown lookup-unknown 2 & workers+=("$!")

( ok=0; failed=0
  while [ $(( $(date +%s) - start )) -lt "$SECONDS_TOTAL" ]; do
    if "$GRPCURL" -plaintext -max-time 5 -H "authorization: Bearer $secret" \
        -d "{\"organizationId\":\"org-soak\",\"tokenId\":\"$target\"}" "127.0.0.1:$port" \
        tokend.v1.ApiTokenService/RotateApiToken >/dev/null 2>&1; then ok=$((ok+1)); else failed=$((failed+1)); fi
    sleep 5
  done
  echo "{\"rotates_ok\":$ok,\"rotates_failed\":$failed}" > "$work/rotates.json" ) &
workers+=("$!")
pids+=("${workers[@]}")

health() { "$GRPCURL" -plaintext -max-time 2 "127.0.0.1:$port" grpc.health.v1.Health/Check 2>/dev/null | tr -d ' \n' ; }
sleep $(( SECONDS_TOTAL / 2 ))
outage_at=$(( $(date +%s) - start ))
if [ "$RESTART" = cluster ]; then
  cluster=$(ls /etc/postgresql | head -1)
  pg_ctlcluster --skip-systemctl-redirect "$cluster" main stop -m fast
else
  psql "$PG/postgres" -qc "ALTER DATABASE $name ALLOW_CONNECTIONS false"
  psql "$PG/postgres" -qAtc "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = '$name'" >/dev/null
fi
t0=$(date +%s.%N); not_serving=
while [ -z "$not_serving" ]; do
  case "$(health)" in *NOT_SERVING*) not_serving=$(python3 -c "print(round($(date +%s.%N)-$t0,2))") ;; esac
  python3 -c "import sys; sys.exit(0 if $(date +%s.%N)-$t0 < 30 else 1)" || { not_serving=never; break; }
  sleep 0.2
done
sleep "$OUTAGE"
if [ "$RESTART" = cluster ]; then
  pg_ctlcluster --skip-systemctl-redirect "$cluster" main start
else
  psql "$PG/postgres" -qc "ALTER DATABASE $name ALLOW_CONNECTIONS true"
fi
t1=$(date +%s.%N); serving=
while [ -z "$serving" ]; do
  case "$(health)" in *'"SERVING"'*) serving=$(python3 -c "print(round($(date +%s.%N)-$t1,2))") ;; esac
  python3 -c "import sys; sys.exit(0 if $(date +%s.%N)-$t1 < 60 else 1)" || { serving=never; break; }
  sleep 0.2
done
emit "{\"outage\":\"$RESTART\",\"at_s\":$outage_at,\"seconds\":$OUTAGE,\"not_serving_after_s\":\"$not_serving\",\"serving_again_after_s\":\"$serving\"}"

for p in "${workers[@]}"; do wait "$p" 2>/dev/null || true; done
for f in "$work"/load-*.json; do emit "$(tail -n 1 "$f")"; done
emit "$(cat "$work/rotates.json")"
emit "$(python3 - "$work/rss.jsonl" <<'PY'
import json, sys
samples = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
def at(t):
    return min(samples, key=lambda s: abs(s["t"] - t))["rss_kb"]
end = samples[-1]["t"]
print(json.dumps({"rss_kb_at_60s": at(60), "rss_kb_at_half": at(end / 2), "rss_kb_end": samples[-1]["rss_kb"],
                  "rss_kb_max_after_60s": max(s["rss_kb"] for s in samples if s["t"] >= 60),
                  "samples": len(samples), "seconds": end}))
PY
)"
kill -TERM "$server"; code=0; wait "$server" || code=$?
emit "{\"exit_code_after_sigterm\":$code}"
emit "{\"server_error_log_lines\":$(grep -c '"level":"ERROR"' "$work/server.log" || true)}"
