#!/usr/bin/env bash
# Mutation testing of the domain rules (issue 14.11): cargo-mutants changes
# one operator, match arm or return value at a time and runs the unit tests
# (`cargo test --lib`) against each change; a mutant the tests do not notice
# is "missed". Opt-in: not called by .ci/run (153 mutants in the three
# default files, each one incremental build of the crate: 12 to 110 s each
# on the loaded 2-core machine of 2026-12-03). TESTING.md quotes the figures
# and argues every survivor.
#
#   bash bench/mutants.sh                         # the three files TESTING.md covers
#   bash bench/mutants.sh src/domain/role.rs      # any other files
#   MUTANTS_ARGS='--shard 1/4' bash bench/mutants.sh
#   MUTANTS_WITHOUT='domain::list::tests::limits_are_inclusive ...' bash bench/mutants.sh
#       # adds the table for the suite without those tests (what they bring)
#
# The tree is left untouched: cargo-mutants mutates a copy (with a copy of
# target/, so only the tokend crate is rebuilt). Its full output goes to
# target/mutants/mutants.out (missed.txt, caught.txt, diff/, log/); the
# per-file table goes to bench/out/<date>-mutants.txt with the commit and the
# exact command.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never
version=27.1.0
if [ "$#" -gt 0 ]; then
  files=("$@")
else
  files=(src/domain/permission/mod.rs src/domain/secret.rs src/domain/list.rs)
fi
if ! cargo mutants --version 2>/dev/null | grep -qx "cargo-mutants $version"; then
  cargo install cargo-mutants --version "$version" --locked
fi

out_dir=target/mutants
mkdir -p "$out_dir" bench/out
# -C --lib: build and run the unit tests only (arguments after `--` would
# reach `cargo test` but not its `--no-run` build, which would then build
# every black-box test binary for each mutant).
cmd=(cargo mutants -j 1 --copy-target=true -C --lib -o "$out_dir")
for f in "${files[@]}"; do cmd+=(-f "$f"); done
# shellcheck disable=SC2206
cmd+=(${MUTANTS_ARGS:-})
commit=$(git rev-parse --short HEAD)
[ -z "$(git status --porcelain -- src)" ] || commit="$commit+uncommitted"
report=bench/out/$(date -u +%Y%m%d)-mutants.txt
started=$(date +%s)
status=0
"${cmd[@]}" || status=$? # 2: some mutants missed, 3: some timed out
elapsed=$(($(date +%s) - started))
case "$status" in
  0 | 2 | 3) ;;
  *) echo "FATAL: cargo mutants exited $status (baseline failed or usage error)" >&2; exit "$status" ;;
esac

{
  echo "date: $(date -u +%Y-%m-%dT%H:%MZ); commit: $commit; cargo-mutants $version; $(nproc) cores; ${elapsed} s"
  echo "command: ${cmd[*]}"
  echo
  # shellcheck disable=SC2086
  python3 bench/mutants_table.py "$out_dir/mutants.out" ${MUTANTS_WITHOUT:-}
} | tee "$report"
echo "table written to $report; details in $out_dir/mutants.out"
