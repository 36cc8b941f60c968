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
#   bench/run.sh ext-authz sqlite|postgres # issue 17: h2load through Envoy (deploy/envoy/ext-authz.yaml) to an
#                                         # upstream, without ext_authz then with it (warm token); h2load on
#                                         # Check directly vs the no-op Health/Check; ratios in the same run
#
# Needs: a release build (`cargo build --release --bins --examples`), and for
# postgres a server at $BENCH_PG (default postgres://postgres@127.0.0.1:5432).
# Load generator and server share the machine; each row is also reported as
# a ratio to the no-op baseline measured in the same run.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:?e2e or list}; db=${2:?sqlite or postgres}
DURATION=${DURATION:-10s}; CONC=${CONC:-16}
BIN=${BIN:-target/release/tokend}; EX=target/release/examples
PG=${BENCH_PG:-postgres://postgres@127.0.0.1:5432}
work=$(mktemp -d); mkdir -p bench/out
out=${BENCH_OUT:-bench/out/$(date -u +%Y%m%d)-$mode-$db.jsonl}; : > "$out"
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
  sqlite:ext-authz) url="sqlite://$work/tokend.db?mode=rwc" ;;
  postgres:ext-authz) name=tokend_bench_$$; psql "$PG/postgres" -qc "CREATE DATABASE $name"; url="$PG/$name" ;;
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

if [ "$mode" = ext-authz ]; then
  # Upstream: an Envoy answering every request itself (direct_response), so
  # that the upstream is never the bottleneck: the rows compare the gateway
  # with and without its ext_authz round trip to tokend. Gateways: the
  # shipped deploy/envoy/ext-authz.yaml (tokend and upstream ports changed),
  # and the same file with the ext_authz filter removed.
  ENVOY=${ENVOY:-envoy}; H2C=${H2_CONNS:-4}; H2M=${H2_STREAMS:-4}
  "$BIN" migrate
  secret=$("$BIN" token create --org org-bench --name bench --type ORGANIZATION --role ORGANIZATION_OWNER | tail -1)
  serve
  up=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
  gw=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
  plain=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
  python3 - "$work" "$port" "$up" "$gw" "$plain" <<'PY'
import sys, yaml
work, tokend, up, gw, plain = sys.argv[1], *map(int, sys.argv[2:])
base = yaml.safe_load(open("deploy/envoy/ext-authz.yaml"))
def render(name, listen, admin, authz):
    c = yaml.safe_load(yaml.safe_dump(base))
    c["admin"]["address"]["socket_address"]["port_value"] = admin
    listener = c["static_resources"]["listeners"][0]
    listener["address"]["socket_address"] = {"address": "127.0.0.1", "port_value": listen}
    manager = listener["filter_chains"][0]["filters"][0]["typed_config"]
    if not authz:
        manager["http_filters"] = [f for f in manager["http_filters"] if f["name"] != "envoy.filters.http.ext_authz"]
        for r in manager["route_config"]["virtual_hosts"][0]["routes"]:
            r.pop("typed_per_filter_config", None)
    for cl in c["static_resources"]["clusters"]:
        sa = cl["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"]
        sa["port_value"] = tokend if cl["name"] == "tokend" else up
    yaml.safe_dump(c, open(f"{work}/{name}.yaml", "w"))
render("gateway", gw, 0, True)
render("plain", plain, 0, False)
upstream = {"admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}}},
  "static_resources": {"listeners": [{"name": "up", "address": {"socket_address": {"address": "127.0.0.1", "port_value": up}},
    "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": {
      "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
      "stat_prefix": "up", "route_config": {"virtual_hosts": [{"name": "up", "domains": ["*"], "routes": [
        {"match": {"prefix": "/"}, "direct_response": {"status": 200, "body": {"inline_string": "ok\n"}}}]}]},
      "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}]}}]}]}]}}
yaml.safe_dump(upstream, open(f"{work}/upstream.yaml", "w"))
PY
  envoys=()
  for name in upstream gateway plain; do
    "$ENVOY" -c "$work/$name.yaml" --base-id $((40 + ${#envoys[@]})) --log-level error --concurrency 1 >"$work/$name.log" 2>&1 &
    envoys+=("$!")
  done
  trap 'kill "${envoys[@]}" 2>/dev/null; cleanup' EXIT
  for p in $up $gw $plain; do
    for _ in $(seq 1 100); do curl -s -o /dev/null "http://127.0.0.1:$p/" && break; sleep 0.1; done
  done
  [ "$(curl -s -o /dev/null -w '%{http_code}' -H "authorization: Bearer $secret" "http://127.0.0.1:$gw/x")" = 200 ] || { echo "gateway does not allow the token" >&2; exit 1; }
  [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$gw/x")" = 401 ] || { echo "gateway does not check" >&2; exit 1; }
  # h2load's summary as a JSON row: requests/s and how many answered 2xx.
  h2row() { # label, h2load args...
    local label=$1; shift
    h2load -D "${DURATION%s}" -c "$H2C" -m "$H2M" "$@" >"$work/h2.txt" 2>&1 || true
    python3 - "$label" "$work/h2.txt" <<'PY'
import json, re, sys
text = open(sys.argv[2]).read()
rps = float(re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", text).group(1))
done = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored", text)
codes = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", text)
print(json.dumps({"row": sys.argv[1], "rps": rps, "done": int(done.group(3)), "2xx": int(codes.group(1)),
                  "4xx": int(codes.group(3)), "5xx": int(codes.group(4))}))
PY
  }
  auth=(-H "authorization: Bearer $secret")
  # Through Envoy: plain proxy, then with ext_authz (the token warm after the check above).
  p=$(h2row "$db envoy plain" "http://127.0.0.1:$plain/x" "${auth[@]}"); emit "$p"
  a=$(h2row "$db envoy ext_authz warm" "http://127.0.0.1:$gw/x" "${auth[@]}")
  emit "$(python3 -c 'import json,sys; p=json.loads(sys.argv[1]); a=json.loads(sys.argv[2]); a["ratio_to_plain_proxy"]=round(a["rps"]/p["rps"],3); print(json.dumps(a))' "$p" "$a")"
  # Check directly: a CheckRequest as Envoy sends it (source address, the
  # request's authorization header), as one gRPC frame; the no-op is
  # Health/Check with an empty request.
  python3 - "$work" "$secret" <<'PY'
import struct, sys
work, secret = sys.argv[1], sys.argv[2]
def uvarint(v):
    out = b""
    while True:
        b = v & 0x7F; v >>= 7
        out += bytes([b | (0x80 if v else 0)])
        if not v: return out
def field(n, payload):  # length-delimited field n
    return bytes([(n << 3) | 2]) + uvarint(len(payload)) + payload
def varint(n, v):
    return bytes([n << 3]) + uvarint(v)
socket = field(2, b"203.0.113.7") + varint(3, 40000)
peer = field(1, field(1, socket))           # Peer.address = Address{socket_address}
entry = field(1, b"authorization") + field(2, f"Bearer {secret}".encode())
http = field(3, entry) + field(3, field(1, b":path") + field(2, b"/x"))
request = field(2, http)                    # Request.http
check = field(1, field(1, peer) + field(4, request))
open(f"{work}/check.bin", "wb").write(b"\0" + struct.pack(">I", len(check)) + check)
open(f"{work}/noop.bin", "wb").write(b"\0\0\0\0\0")
PY
  grpc=(-H 'content-type: application/grpc' -H 'te: trailers')
  curl -s --http2-prior-knowledge "${grpc[@]}" --data-binary @"$work/check.bin" \
    "http://127.0.0.1:$port/envoy.service.auth.v3.Authorization/Check" | grep -aq x-tokend-token-id \
    || { echo "Check frame is not allowed" >&2; exit 1; }
  n=$(h2row "$db noop Health/Check" -d "$work/noop.bin" "${grpc[@]}" "http://127.0.0.1:$port/grpc.health.v1.Health/Check"); emit "$n"
  c=$(h2row "$db Check direct warm" -d "$work/check.bin" "${grpc[@]}" "http://127.0.0.1:$port/envoy.service.auth.v3.Authorization/Check")
  emit "$(python3 -c 'import json,sys; n=json.loads(sys.argv[1]); c=json.loads(sys.argv[2]); c["ratio_to_noop"]=round(c["rps"]/n["rps"],3); print(json.dumps(c))' "$n" "$c")"
  emit "{\"row\":\"h2load\",\"connections\":$H2C,\"streams_per_connection\":$H2M,\"duration\":\"$DURATION\",\"envoy_concurrency\":1,\"cpus\":$(nproc)}"
  kill "${envoys[@]}" 2>/dev/null; kill -TERM $pid; wait $pid || true; pid=
  [ "$db" = postgres ] && psql "$PG/postgres" -qc "DROP DATABASE $name WITH (FORCE)"
elif [ "$mode" = fleet ]; then
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
  # FLEET_RSS_1M=0 skips the pass over all 1M secrets (6-11 minutes here).
  if [ "${FLEET_RSS_1M:-1}" != 0 ]; then
    emit "$(load --scenario warm-cache --secrets-file "$fleet/secrets.txt" --concurrency 16)"
    emit "{\"row\":\"rss_1m_cached_kb\",\"db\":\"$db\",\"cache_entries\":$(metric tokend_auth_cache_entries),\"vmrss\":$(rss $pid VmRSS),\"vmhwm\":$(rss $pid VmHWM)}"
  fi
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
