#!/usr/bin/env bash
# The recorded kube-apiserver fixtures (tests/fixtures/kube/, lib/kube's unit tests read them)
# still match the real server: tools/kube/record-fixtures.sh --check records every fixture again
# from a fresh v1.20.2 server in this test's namespace, requires each to show what it is for
# (paged LIST with continue; watch ADDED/MODIFIED/DELETED/BOOKMARK; in-stream ERROR 410;
# HTTP 410 on a compacted continue; 504 ResourceVersionTooLarge; 404s; TokenReview of a bound
# istio-ca token, of another audience's and of a forged one), and compares the shapes (status,
# kinds, event types, reasons, codes, list sizes) with the committed files.
exec "$(dirname "$0")/../../tools/kube/record-fixtures.sh" --check
