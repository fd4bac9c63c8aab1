-- POST one ~200-byte JSON record per request to STREAM (native face), with
-- MODE (read by idempotency.sh's wrk invocation through os.getenv):
--   plain   no key (the baseline);
--   keyed   a fresh Idempotency-Key per request: PREFIX, the thread's
--           number, a random tag and a counter, never the same twice;
--   replay  Idempotency-Key PREFIX0 ... PREFIX<KEYS-1> in turn, keys the
--           script pushed once with this body before the load, so every
--           request is answered from the table of keys.
-- Every mode builds its request in `request` with wrk.format, so the three
-- loads cost wrk the same work apart from the header. Non-2xx answers are
-- counted by wrk itself ("Non-2xx or 3xx responses"); there is no
-- `response` function, which would make wrk parse every answer's headers.
local mode = os.getenv("MODE") or "plain"
local stream = os.getenv("STREAM") or "bench"
local prefix = os.getenv("PREFIX") or "k-"
local keys = tonumber(os.getenv("KEYS") or "1000")
local path = "/v1/streams/" .. stream .. "/records"
local body = '{"device":"d-17","temp":21.5,"ts":1700000000000,"note":"' .. string.rep("x", 140) .. '"}'
local headers = { ["Content-Type"] = "application/json" }
local counter = 0
local tag = ""

local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("thread_number", threads)
end

function init(args)
  -- wrk's math.random starts from the same seed in every run: seed it, and
  -- the thread's number and PREFIX (unique per load) keep keys apart anyway.
  math.randomseed(os.time() * 1000 + (thread_number or 0))
  tag = prefix .. (thread_number or 0) .. "-" .. math.random(0, 2147483646) .. "-"
end

if mode == "keyed" then
  request = function()
    counter = counter + 1
    headers["Idempotency-Key"] = tag .. counter
    return wrk.format("POST", path, headers, body)
  end
elseif mode == "replay" then
  request = function()
    headers["Idempotency-Key"] = prefix .. (counter % keys)
    counter = counter + 1
    return wrk.format("POST", path, headers, body)
  end
else
  request = function()
    return wrk.format("POST", path, headers, body)
  end
end
