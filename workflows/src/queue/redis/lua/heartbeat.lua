-- heartbeat: mark the worker alive, reclaim a bounded batch of expired leases (anyone's), and
-- forget a bounded batch of workers not seen for `worker ttl`.
-- ARGV: 1 BASE, 2 worker, 3 reclaim limit, 4 dead keep, 5 idempotency retention ms,
--       6 worker ttl ms
-- Returns how many leases were reclaimed.
local worker = ARGV[2]
local now = now_ms()
redis.call('ZADD', K_WORKERS, now, worker)
local reclaimed = reclaim(now, tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]))
local gone = redis.call('ZRANGEBYSCORE', K_WORKERS, '-inf', now - tonumber(ARGV[6]), 'LIMIT', 0, 100)
if #gone > 0 then
  redis.call('ZREM', K_WORKERS, unpack(gone))
end
return reclaimed
