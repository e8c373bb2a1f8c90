#!/usr/bin/env bash
# The harness's leak check (run.sh) on tests made to leak: each kind of leftover - a
# process (also one that left the session), a network namespace, a link, a TMPDIR entry -
# fails the test with its name and is removed; a clean test passes; a failing test keeps
# its exit status.
. "$(dirname "$0")/lib.sh"
require_root
RUN=$ROOT/tests/integration/run.sh
mkdir -p "$WORK/t"
# Each case: a test script body; run.sh runs it; out/rc recorded.
case_run() { # name body
    printf '#!/usr/bin/env bash\n%s\n' "$2" >"$WORK/t/$1.sh"
    local rc=0
    bash "$RUN" "$WORK/t/$1.sh" >"$WORK/t/$1.out" 2>&1 || rc=$?
    echo $rc >"$WORK/t/$1.rc"
    sed 's/^/#   /' "$WORK/t/$1.out"
}
rc_of() { cat "$WORK/t/$1.rc"; }
says() { grep -q -- "$2" "$WORK/t/$1.out"; }
gone() { ! kill -0 "$1" 2>/dev/null; }

case_run clean 'ip netns add amt-ok-$$; ip netns del amt-ok-$$; d=$(mktemp -d); rm -r "$d"; sleep 0.2 & wait'
check "a clean test passes" [ "$(rc_of clean)" = 0 ]
check "... and nothing is reported" sh -c "! grep -q 'left behind' '$WORK/t/clean.out'"

case_run failing 'exit 3'
check "a failing clean test keeps its exit status" [ "$(rc_of failing)" = 3 ]

case_run proc 'sleep 300 & echo "pid $!"'
P1=$(sed -n 's/^pid //p' "$WORK/t/proc.out")
check "a leaked child process fails the test" [ "$(rc_of proc)" = 1 ]
check "... naming it" says proc "process $P1: sleep 300"
check "... and it is killed" wait_for gone "$P1"

case_run daemon '(setsid sleep 301 </dev/null >/dev/null 2>&1 & echo "pid $!")'
P2=$(sed -n 's/^pid //p' "$WORK/t/daemon.out")
check "a process that left the session (setsid, double fork) fails the test" \
    says daemon "process $P2: sleep 301"
check "... and it is killed" wait_for gone "$P2"

case_run netns 'ip netns add amt-leak-$$'
check "a leaked network namespace fails the test" [ "$(rc_of netns)" = 1 ]
check "... naming it" says netns "network namespace amt-leak-"

case_run link 'ip link add amtleak0 type veth peer name amtleak1'
check "a leaked link fails the test" [ "$(rc_of link)" = 1 ]
check "... naming it" says link "link amtleak0"

case_run file 'mktemp -d "$TMPDIR/amesh-it.XXXXXX"'
check "a leaked TMPDIR entry (a WORK dir) fails the test" [ "$(rc_of file)" = 1 ]
check "... naming it" says file "file /tmp/amesh-run.*/amesh-it."

case_run leakyfail 'sleep 302 & exit 4'
check "a failing leaky test keeps its own status" [ "$(rc_of leakyfail)" = 4 ]
check "... and the leak is still named" says leakyfail "sleep 302"

finish
