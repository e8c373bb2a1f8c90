-- wrk script: one machine-readable line with the totals and the latency percentiles (us).
done = function(summary, latency, requests)
    local e = summary.errors
    io.write(string.format(
        "RESULT requests=%d duration_us=%d p50=%d p90=%d p99=%d err_connect=%d err_read=%d err_write=%d err_status=%d err_timeout=%d\n",
        summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
        latency:percentile(99), e.connect, e.read, e.write, e.status, e.timeout))
end
