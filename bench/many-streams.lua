-- POST one ~200-byte JSON record (or, with BATCH=1, an array of 100) per
-- request to a stream picked at random among STREAMS (s0 ... s<STREAMS-1>);
-- STREAMS=1 is "the same load on one stream". The environment variables
-- are read by many-streams.sh's wrk invocation (wrk passes none itself, so
-- the script gets them through os.getenv).
local streams = tonumber(os.getenv("STREAMS") or "500")
local record = '{"device":"d-17","temp":21.5,"ts":1700000000000,"note":"' .. string.rep("x", 140) .. '"}'
local body = record
if os.getenv("BATCH") == "1" then
  local records = {}
  for i = 1, 100 do records[i] = record end
  body = "[" .. table.concat(records, ",") .. "]"
end
local headers = { ["Content-Type"] = "application/json" }

request = function()
  local path = "/v1/streams/s" .. math.random(0, streams - 1) .. "/records"
  return wrk.format("POST", path, headers, body)
end
