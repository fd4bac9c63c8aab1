-- POST one CKafka DataHub SendMessage of one ~200-byte message per request
-- (DataHubId "datahub-bench").
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-TC-Action"] = "SendMessage"
wrk.body = '{"DataHubId":"datahub-bench","Message":[{"Body":"' .. string.rep("x", 200) .. '"}]}'
