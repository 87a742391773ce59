-- wrk script: POSTs pre-signed webhooks read from REQUESTS_FILE (one
-- "id<TAB>signature<TAB>body" per line). Each wrk thread takes every Nth
-- line so no two threads send the same id. The id also goes out as
-- x-request-id, which Hermes echoes, so with ACCEPTED_DIR set every id
-- answered 202 is written to ACCEPTED_DIR/<thread>.ids (to check none is lost).
local threads = {}
local counter = 0

function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

function init(args)
  local file = os.getenv("REQUESTS_FILE")
  local nthreads = tonumber(os.getenv("WRK_THREADS") or "1")
  local path = os.getenv("WEBHOOK_PATH") or "/webhooks/sms"
  local dir = os.getenv("ACCEPTED_DIR")
  requests = {}
  local i = 0
  for line in io.lines(file) do
    if i % nthreads == id then
      local t1 = string.find(line, "\t", 1, true)
      local t2 = string.find(line, "\t", t1 + 1, true)
      local mid = string.sub(line, 1, t1 - 1)
      local sig = string.sub(line, t1 + 1, t2 - 1)
      local body = string.sub(line, t2 + 1)
      requests[#requests + 1] = wrk.format("POST", path, {
        ["Content-Type"] = "application/json",
        ["x-provider-signature-256"] = sig,
        ["x-request-id"] = mid
      }, body)
    end
    i = i + 1
  end
  index = 0
  accepted = 0
  refused = 0
  retry_after = 0
  other = 0
  if dir then log = io.open(dir .. "/" .. id .. ".ids", "w") end
end

function request()
  index = index + 1
  if index > #requests then index = 1 end
  return requests[index]
end

function response(status, headers, body)
  if status == 202 then
    accepted = accepted + 1
    if log then log:write(headers["x-request-id"] or "", "\n") end
  elseif status == 503 then
    refused = refused + 1
    if headers["retry-after"] or headers["Retry-After"] then retry_after = retry_after + 1 end
  else
    other = other + 1
  end
end

function done(summary, latency, requests)
  local a, r, ra, o = 0, 0, 0, 0
  for _, thread in ipairs(threads) do
    a = a + thread:get("accepted")
    r = r + thread:get("refused")
    ra = ra + thread:get("retry_after")
    o = o + thread:get("other")
  end
  io.write(string.format("STATUS 202=%d 503=%d retry_after=%d other=%d\n", a, r, ra, o))
  io.write(string.format("LATENCY p50=%.3fms p99=%.3fms p999=%.3fms\n",
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency:percentile(99.9) / 1000))
end
