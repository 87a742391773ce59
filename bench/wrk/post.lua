-- wrk script: POSTs pre-signed webhooks read from REQUESTS_FILE (one
-- "signature<TAB>body" per line). Each wrk thread takes every Nth line so
-- no two threads send the same id.
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
  requests = {}
  local i = 0
  for line in io.lines(file) do
    if i % nthreads == id then
      local tab = string.find(line, "\t", 1, true)
      local sig = string.sub(line, 1, tab - 1)
      local body = string.sub(line, tab + 1)
      requests[#requests + 1] = wrk.format("POST", path, {
        ["Content-Type"] = "application/json",
        ["x-provider-signature-256"] = sig
      }, body)
    end
    i = i + 1
  end
  index = 0
  accepted = 0
  refused = 0
  other = 0
end

function request()
  index = index + 1
  if index > #requests then index = 1 end
  return requests[index]
end

function response(status, headers, body)
  if status == 202 then accepted = accepted + 1
  elseif status == 503 then refused = refused + 1
  else other = other + 1 end
end

function done(summary, latency, requests)
  local a, r, o = 0, 0, 0
  for _, thread in ipairs(threads) do
    a = a + thread:get("accepted")
    r = r + thread:get("refused")
    o = o + thread:get("other")
  end
  io.write(string.format("STATUS 202=%d 503=%d other=%d\n", a, r, o))
  io.write(string.format("LATENCY p50=%.2fms p99=%.2fms p999=%.2fms\n",
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency:percentile(99.9) / 1000))
end
