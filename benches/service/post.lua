-- wrk script: POST a JSON body with a bearer token. For /v1/reserve every
-- request gets its own order reference (thread id and counter).
local token = os.getenv("QLEDGER_BENCH_TOKEN")
local path = os.getenv("QLEDGER_BENCH_PATH")
local counter = 0
local thread_id = 0
local next_thread = 0

function setup(thread)
  thread:set("thread_id", next_thread)
  next_thread = next_thread + 1
end

function request()
  counter = counter + 1
  local order = string.format("B-%d-%d-%d", os.time(), thread_id, counter)
  local body = string.format('{"order":"%s","chip":"H200","market":"CN","units":1,"date":"2026-06-30","customer":"C-ALPHA","lot":"L-BENCH"}', order)
  if path == "/v1/check" then
    body = '{"chip":"H200","market":"CN","units":1,"date":"2026-06-30","customer":"C-ALPHA","lot":"L-BENCH"}'
  end
  return wrk.format("POST", path, {["Authorization"] = "Bearer " .. token, ["Content-Type"] = "application/json"}, body)
end

function done(summary, latency, requests)
  io.stderr:write(string.format("non2xx=%d\n", summary.errors.status))
end
