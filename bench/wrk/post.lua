-- wrk script: POSTs pre-signed webhooks read from REQUESTS_FILE (one
-- "id<TAB>signature<TAB>body" per line). Each wrk thread takes every Nth
-- line so no two threads send the same id. The id also goes out as
-- x-request-id, which Hermes echoes, so with ACCEPTED_DIR set every id
-- answered 202 (or 200) is written to ACCEPTED_DIR/<thread>.ids (to check none is lost).
local threads = {}
local counter = 0
local ffi = require("ffi") -- wrk runs LuaJIT: ffi reaches libc for a clock and a sleep
ffi.cdef[[
  typedef struct { long tv_sec; long tv_nsec; } hermes_timespec;
  int clock_gettime(int clock, hermes_timespec *ts);
  int usleep(unsigned int usec);
]]

-- wrk initialises its threads one after another, each starting to send as
-- soon as its own init() is done, and starts the clock of -d only once the
-- last one is. Reading REQUESTS_FILE takes each thread a second or more
-- (several on a busy machine), so thread 0 used to send alone before the
-- measured window and its answers were counted as if sent within it: the
-- bench overstated every rate. With READY_FILE set, the last thread creates
-- that file at the end of its init(), and no thread sends before it exists.
local ready_file = os.getenv("READY_FILE")
local nthreads = tonumber(os.getenv("WRK_THREADS") or "1")
local started = ready_file == nil

local function wait_for_every_thread()
  while true do
    local f = io.open(ready_file, "r")
    if f then f:close() return end
    ffi.C.usleep(1000)
  end
end

-- With RATE set (requests per second, over all threads), each thread sends
-- at its share of that rate on a fixed schedule (an open loop, like wrk2):
-- a connection asks delay() for the next free slot of its thread. Without
-- it, every connection sends again as soon as it is answered.
local rate = tonumber(os.getenv("RATE") or "")
if rate then
  local ts = ffi.new("hermes_timespec")
  local function now_ms()
    ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
    return tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6
  end
  local interval = nthreads * 1000 / rate
  local next_slot = 0
  -- A slot missed because every connection was busy is not made up later:
  -- the rate then falls short, and the report shows the rate reached.
  function delay()
    local now = now_ms()
    if next_slot < now then next_slot = now end
    local wait = next_slot - now
    next_slot = next_slot + interval
    return wait
  end
end

function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

function init(args)
  local file = os.getenv("REQUESTS_FILE")
  local path = os.getenv("WEBHOOK_PATH") or "/webhooks/sms"
  local dir = os.getenv("ACCEPTED_DIR")
  -- Provider-native formats (bench scenarios twilio, receipts) send forms signed with X-Twilio-Signature.
  content_type = os.getenv("CONTENT_TYPE") or "application/json"
  signature_header = os.getenv("SIGNATURE_HEADER") or "x-provider-signature-256"
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
        ["Content-Type"] = content_type,
        [signature_header] = sig,
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
  if ready_file and id == nthreads - 1 then io.open(ready_file, "w"):close() end
end

-- wrk calls thread 0's request() once on its own, before any thread runs,
-- to check the request parses (script_verify_request); that call must not wait.
local verified = false

function request()
  if not started then
    if id ~= 0 or verified then
      wait_for_every_thread()
      started = true
    end
    verified = true
  end
  index = index + 1
  if index > #requests then index = 1 end
  return requests[index]
end

function response(status, headers, body)
  -- 202 for Hermes' own format, 200 (TwiML or JSON) for the provider formats: both mean stored.
  if status == 202 or status == 200 then
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
