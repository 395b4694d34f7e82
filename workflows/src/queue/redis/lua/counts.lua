-- counts: one consistent snapshot of a queue's sizes and counters.
-- ARGV: 1 BASE. Returns {pending, running, scheduled, failed, dead, done, cancelled, enqueued,
-- reclaimed, retried, dead_total, workers}.
local s = redis.call('HMGET', K_STATS, 'tombstones', 'done', 'cancelled', 'enqueued', 'reclaimed', 'retried', 'dead_total')
local function n(v)
  return tonumber(v) or 0
end
return {
  redis.call('LLEN', K_READY) - n(s[1]),
  redis.call('ZCARD', K_LEASES),
  redis.call('ZCARD', K_DELAYED),
  redis.call('ZCARD', K_RETRY),
  redis.call('ZCARD', K_DEAD),
  n(s[2]), n(s[3]), n(s[4]), n(s[5]), n(s[6]), n(s[7]),
  redis.call('ZCARD', K_WORKERS),
}
