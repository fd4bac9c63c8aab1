-- POST one Kafka REST Proxy v2 produce request of one ~200-byte JSON value
-- per request (json embedding).
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/vnd.kafka.json.v2+json"
wrk.body = '{"records":[{"value":{"device":"d-17","temp":21.5,"ts":1700000000000,"note":"' .. string.rep("x", 140) .. '"}}]}'
