-- wrk script: POST a small JSON body and print "requests p50_us p99_us" when done.
wrk.method = "POST"
wrk.body = '{"data": [[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]]}'
wrk.headers["Content-Type"] = "application/json"

done = function(summary, latency, requests)
  io.write(string.format("RESULT %d %.3f %d %d %d\n", summary.requests, summary.duration / 1e6,
    latency:percentile(50), latency:percentile(99), summary.errors.status + summary.errors.connect +
    summary.errors.read + summary.errors.write + summary.errors.timeout))
end
