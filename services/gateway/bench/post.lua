-- wrk script: POST /v1/predict with a JSON body and the API key header.
wrk.method = "POST"
wrk.body = os.getenv("BENCH_BODY") or '{"entity_ids": ["u1"]}'
wrk.headers["Content-Type"] = "application/json"
local key = os.getenv("BENCH_API_KEY")
if key and key ~= "" then
  wrk.headers["X-API-Key"] = key
end

-- wrk counts answers outside 2xx/3xx; run.sh refuses a run that had any, so
-- a misconfigured gateway (401, 429, 503) cannot pass for a fast one.
done = function(summary, latency, requests)
  io.write(string.format("non_2xx_responses %d\n", summary.errors.status))
end
