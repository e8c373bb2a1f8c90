#!/usr/bin/env bash
# ztunnel's data-path tests again with four worker threads per ztunnel (issue 12: the
# suite passes with --workers 4 too). The harness starts ztunnel without --workers, so
# ZTUNNEL_WORKERS in the environment sets the count for every ztunnel a test starts.
# Each test runs as it does alone (its own namespaces, addresses and work directory);
# this one fails if any of them does. W65_TESTS overrides the list (script names).
set -uo pipefail
IT=$(cd "$(dirname "$0")" && pwd)
export ZTUNNEL_WORKERS=${ZTUNNEL_WORKERS:-4}
# Data path (local and in-pod mode), policies and their live changes, metrics gathered from
# every worker, a ztunnel replaced under open connections.
TESTS=${W65_TESTS:-"01-two-node-hbone.sh 02-hbone-independent-client.sh 03-hbone-refusals.sh
    11-inpod-mesh.sh 13-ztunnel-upgrade.sh 14-ztunnel-metrics.sh 15-l4-policy.sh
    16-policy-live.sh 19-policy-recheck.sh"}
failed=()
for t in $TESTS; do
    echo "# ---- $t with ZTUNNEL_WORKERS=$ZTUNNEL_WORKERS"
    start=$(date +%s)
    if FAMILY=4 bash "$IT/$t"; then
        echo "ok - $t ($(($(date +%s) - start)) s)"
    else
        echo "not ok - $t ($(($(date +%s) - start)) s)"
        failed+=("$t")
    fi
done
echo "${#failed[@]} of $(echo $TESTS | wc -w) failed${failed:+: ${failed[*]}}"
[ ${#failed[@]} -eq 0 ]
