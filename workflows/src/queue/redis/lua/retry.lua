-- retry: a dead, failed (awaiting retry) or scheduled job becomes ready now, at the front of
-- the queue; its attempt count is kept.
-- ARGV: 1 BASE, 2 id. Returns {1 | 0, previous state or 'missing'}.
local id = ARGV[2]
local jk = job_key(id)
local state = redis.call('HGET', jk, 's')
if not state then
  return {0, 'missing'}
end
local from = nil
if state == 'dead' then
  from = K_DEAD
elseif state == 'retry' then
  from = K_RETRY
elseif state == 'delayed' then
  from = K_DELAYED
else
  return {0, state}
end
redis.call('ZREM', from, id)
redis.call('HSET', jk, 's', 'ready', 'r', now_ms())
redis.call('HDEL', jk, 'f')
redis.call('RPUSH', K_READY, id)
redis.call('HINCRBY', K_STATS, 'retried', 1)
return {1, state}
