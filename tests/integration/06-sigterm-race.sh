#!/usr/bin/env bash
# A connection that lands on 15001 between SIGTERM and the drain closing the
# listeners must not touch a freed listener: the ztunnel is stopped, sent
# SIGTERM, a client connects to its outbound port, then it resumes. It must
# exit 0 with no sanitizer report. Repeated a few times, the race is narrow.
. "$(dirname "$0")/lib.sh"
require_root
topo_two_nodes 4
make_ca "$WORK/ca"
write_config "$WORK/mesh.yaml"

for i in 1 2 3; do
    start_ztunnel "$N1" node-1 "$WORK/mesh.yaml" "$WORK/ca" "$WORK/zt$i.log" --drain-timeout 1
    ZT=$LAST_PID
    kill -STOP "$ZT"
    sleep 0.2
    kill -TERM "$ZT"
    sleep 0.1
    # Queued in the 15001 backlog while the process is stopped.
    start_bg "$WORK/client$i.log" ip netns exec "$N1" $PY -c "
import socket,time
s=socket.create_connection(('$CLIENT_IP',15001),timeout=2);time.sleep(3)"
    CLIENT=$LAST_PID
    sleep 0.3
    kill -CONT "$ZT"
    check "round $i: ztunnel SIGTERMed while stopped exits 0, sanitizers clean" \
        stop_ztunnel "$ZT" "$WORK/zt$i.log"
    kill "$CLIENT" 2>/dev/null || true
    wait "$CLIENT" 2>/dev/null || true
done
finish
