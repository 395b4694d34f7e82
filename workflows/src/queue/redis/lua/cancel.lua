-- cancel: a pending, scheduled or failed job is removed and recorded as cancelled. A running
-- job is refused (its worker would finish it anyway), and so is a dead one (already final).
-- ARGV: 1 BASE, 2 id, 3 cancelled keep, 4 idempotency retention ms.
-- Returns {1 | 0, previous state or 'missing'}.
local id = ARGV[2]
local keep = tonumber(ARGV[3])
local retention_ms = tonumber(ARGV[4])
local jk = job_key(id)
local state = redis.call('HGET', jk, 's')
if not state then
  return {0, 'missing'}
end
if state == 'ready' then
  -- The id stays in the ready list as a tombstone (no LREM over the backlog); the fetch that
  -- pops it deletes the envelope. Counted so that `pending` stays exact.
  redis.call('HSET', jk, 's', 'cancelled')
  release_ikey(id, redis.call('HGET', jk, 'i'), retention_ms)
  redis.call('HINCRBY', K_STATS, 'tombstones', 1)
elseif state == 'delayed' or state == 'retry' then
  if state == 'delayed' then
    redis.call('ZREM', K_DELAYED, id)
  else
    redis.call('ZREM', K_RETRY, id)
  end
  forget(id, retention_ms)
else
  return {0, state}
end
redis.call('ZADD', K_CANCELLED, now_ms(), id)
trim_oldest(K_CANCELLED, keep, 100)
redis.call('HINCRBY', K_STATS, 'cancelled', 1)
return {1, state}
