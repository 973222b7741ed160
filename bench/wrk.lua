-- wrk script for bench/load.py: cycle through prepared requests, count 2xx, stop at a cap.
-- args: requests file (METHOD TAB PATH [TAB BODY] per line), content type, max per thread.

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  cap = tonumber(args[3])
  reqs = {}
  for line in io.lines(args[1]) do
    local method, path, body = line:match("^([^\t]*)\t([^\t]*)\t?(.*)$")
    local headers = {}
    if body == "" then
      body = nil
    else
      headers["Content-Type"] = args[2]
    end
    reqs[#reqs + 1] = wrk.format(method, path, headers, body)
  end
  n, ok, bad = 0, 0, 0
end

function request()
  n = n % #reqs + 1
  return reqs[n]
end

function response(status, headers, body)
  if status >= 200 and status < 300 then
    ok = ok + 1
  else
    bad = bad + 1
  end
  if ok + bad >= cap then
    wrk.thread:stop()
  end
end

function done(summary, latency, requests)
  local total_ok, total_bad = 0, 0
  for _, t in ipairs(threads) do
    total_ok = total_ok + t:get("ok")
    total_bad = total_bad + t:get("bad")
  end
  local e = summary.errors
  io.write(string.format(
    'IVZ_BENCH_RESULT {"ok": %d, "non_2xx": %d, "errors": %d, "seconds": %.6f, '
      .. '"p50_ms": %.3f, "p99_ms": %.3f}\n',
    total_ok, total_bad, e.connect + e.read + e.write + e.timeout, summary.duration / 1e6,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
