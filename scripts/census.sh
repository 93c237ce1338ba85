#!/usr/bin/env bash
# Census of what `tunebridge run` accepts: `tunebridge run --check` over every config
# (.yaml, .yml, .py, .toml but scope.toml) in each DIR, one markdown row per file with its
# verdict and first reason, then the share accepted. Exit 0 (2 when a check errs).
#
#   scripts/census.sh fixtures/upstream/axolotl fixtures/upstream/unsloth
#
# The upstream example sets' figures in docs/UPSTREAM.md come from tests/integration/census.rs,
# which runs the same check in-process and adds the in-scope-family share and the tally.
# TUNEBRIDGE names the binary (default: target/debug/tunebridge, built with --features engine).
set -u
bin=${TUNEBRIDGE:-target/debug/tunebridge}
[ "$#" -gt 0 ] || { echo "usage: $0 DIR..." >&2; exit 2; }
[ -x "$bin" ] || { echo "error: $bin not found (cargo build --features engine, or set TUNEBRIDGE)" >&2; exit 2; }
n=0 ok=0 refused=0 errors=0
echo "| file | verdict | first reason |"
echo "|---|---|---|"
for dir in "$@"; do
    for f in "$dir"/*.yaml "$dir"/*.yml "$dir"/*.py "$dir"/*.toml; do
        [ -f "$f" ] || continue
        [ "$(basename "$f")" = scope.toml ] && continue
        n=$((n + 1))
        err=$("$bin" run --check -q "$f" 2>&1 >/dev/null)
        rc=$?
        first=$(printf '%s\n' "$err" | grep -m1 '^error' | sed 's/^error\(\[[a-z-]*\]\)\?: //; s/|/\\|/g')
        case $rc in
            0) ok=$((ok + 1)); verdict=accepted; first= ;;
            3) refused=$((refused + 1)); verdict=refused ;;
            *) errors=$((errors + 1)); verdict="error ($rc)" ;;
        esac
        echo "| \`$f\` | $verdict | $first |"
    done
done
echo
awk -v ok="$ok" -v n="$n" -v r="$refused" -v e="$errors" 'BEGIN {
    printf "accepted: %d of %d (%.0f%%); refused: %d; errors: %d\n", ok, n, (n ? 100 * ok / n : 0), r, e }'
[ "$errors" -eq 0 ] || exit 2
