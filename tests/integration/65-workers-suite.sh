#!/usr/bin/env bash
# ztunnel's data-path tests again with four worker threads per ztunnel, then with one (issue
# 12: the suite passes with --workers 4 and with --workers 1; the rest of the suite runs with
# the default, 2 on CI). The harness starts ztunnel without --workers, so ZTUNNEL_WORKERS in
# the environment sets the count for every ztunnel a test starts. W65_WORKERS overrides the
# counts.
# Each test runs as it does alone (its own namespaces, addresses and work directory);
# this one fails if any of them does. W65_TESTS overrides the list (script names).
set -uo pipefail
IT=$(cd "$(dirname "$0")" && pwd)
# Data path (local and in-pod mode), policies and their live changes, metrics gathered from
# every worker. Not 13 (upgrade under load): about one run in twenty, with any worker count,
# one of its 1,000 connections is reset when its HBONE CONNECT crosses the old ztunnel's GOAWAY
# (sent at once with the last stream id, not after a shutdown notice; RFC 9113 6.8). That is an
# open bug in lib/h2, not in the workers; 13 still runs once in the suite, and three runs here
# made the flake three times as likely to fail CI.
TESTS=${W65_TESTS:-"01-two-node-hbone.sh 02-hbone-independent-client.sh 03-hbone-refusals.sh
    11-inpod-mesh.sh 14-ztunnel-metrics.sh 15-l4-policy.sh 16-policy-live.sh
    19-policy-recheck.sh"}
failed=()
runs=0
for n in ${W65_WORKERS:-4 1}; do
    export ZTUNNEL_WORKERS=$n
    for t in $TESTS; do
        echo "# ---- $t with ZTUNNEL_WORKERS=$ZTUNNEL_WORKERS"
        start=$(date +%s)
        runs=$((runs + 1))
        if FAMILY=4 bash "$IT/$t"; then
            echo "ok - $t, $n workers ($(($(date +%s) - start)) s)"
        else
            echo "not ok - $t, $n workers ($(($(date +%s) - start)) s)"
            failed+=("$t/$n")
        fi
    done
done
echo "${#failed[@]} of $runs failed${failed:+: ${failed[*]}}"
[ ${#failed[@]} -eq 0 ]
