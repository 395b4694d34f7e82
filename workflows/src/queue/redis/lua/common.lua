-- Shared preamble of every queue script (prepended at compile time).
--
-- KEYS (always all of them, in this order; they share the `{queue}` hash tag):
--   1 ready (LIST of ids, pushed left, popped right)   2 delayed (ZSET id -> run-at ms)
--   3 retry (ZSET id -> next attempt ms)                4 leases (ZSET id -> deadline ms)
--   5 holders (HASH id -> "worker#attempt")             6 dead (ZSET id -> died-at ms)
--   7 stats (HASH of counters)                          8 done (ZSET id -> done-at ms)
--   9 cancelled (ZSET id -> cancelled-at ms)           10 workers (ZSET name -> last seen ms)
-- ARGV[1] is the queue's key base; envelopes live at BASE:job:<id>, idempotency keys at
-- BASE:ikey:<key>.
--
-- Every operation below touches a bounded number of elements: ranges always carry LIMIT or
-- a count, and `unpack` is only ever applied to arrays whose length the caller bounded.
local K_READY, K_DELAYED, K_RETRY, K_LEASES, K_HOLDERS = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local K_DEAD, K_STATS, K_DONE, K_CANCELLED, K_WORKERS = KEYS[6], KEYS[7], KEYS[8], KEYS[9], KEYS[10]
local BASE = ARGV[1]

local function job_key(id)
  return BASE .. ':job:' .. id
end

local function ikey_key(k)
  return BASE .. ':ikey:' .. k
end

-- Server time in ms: every deadline is compared with the clock of the one Redis server, never
-- with the clocks of the workers' hosts.
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Keeps the newest `keep` members of a ZSET scored by time; removes at most `excess` (a few
-- per call in steady state) and returns the removed ids.
local function trim_oldest(zkey, keep, max_pop)
  if keep < 0 then
    return {}
  end
  local excess = redis.call('ZCARD', zkey) - keep
  if excess <= 0 then
    return {}
  end
  local popped = redis.call('ZPOPMIN', zkey, math.min(excess, max_pop))
  local ids = {}
  for i = 1, #popped, 2 do
    ids[#ids + 1] = popped[i]
  end
  return ids
end

-- The job's idempotency key stops pointing at it after `retention_ms` (at once when 0), unless
-- another job holds the key by then.
local function release_ikey(id, ik, retention_ms)
  if not ik or ik == '' then
    return
  end
  local kk = ikey_key(ik)
  if redis.call('GET', kk) ~= id then
    return
  end
  if retention_ms > 0 then
    redis.call('PEXPIRE', kk, retention_ms)
  else
    redis.call('DEL', kk)
  end
end

-- Deletes a job's envelope for good (done, cancelled or trimmed from dead).
local function forget(id, retention_ms)
  local jk = job_key(id)
  release_ikey(id, redis.call('HGET', jk, 'i'), retention_ms)
  redis.call('DEL', jk)
end

local function to_dead(id, now, err, dead_keep, retention_ms)
  redis.call('HSET', job_key(id), 's', 'dead', 'e', err, 'f', now)
  redis.call('ZADD', K_DEAD, now, id)
  redis.call('HINCRBY', K_STATS, 'dead_total', 1)
  for _, old in ipairs(trim_oldest(K_DEAD, dead_keep, 100)) do
    forget(old, retention_ms)
  end
end

-- Returns up to `limit` expired leases to ready (at the front: they were started first), or to
-- dead when the job has used all its attempts. Returns how many were reclaimed.
local function reclaim(now, limit, dead_keep, retention_ms)
  if limit <= 0 then
    return 0
  end
  local ids = redis.call('ZRANGEBYSCORE', K_LEASES, '-inf', now, 'LIMIT', 0, limit)
  for _, id in ipairs(ids) do
    redis.call('ZREM', K_LEASES, id)
    local holder = redis.call('HGET', K_HOLDERS, id)
    redis.call('HDEL', K_HOLDERS, id)
    local jk = job_key(id)
    local v = redis.call('HMGET', jk, 'n', 'm', 's')
    if v[1] and v[3] == 'running' then
      local n, m = tonumber(v[1]), tonumber(v[2])
      local err = 'lease expired: worker ' .. tostring(holder) .. ' stopped renewing it (attempt '
        .. n .. ' of ' .. m .. ')'
      if n >= m then
        to_dead(id, now, err, dead_keep, retention_ms)
      else
        redis.call('HSET', jk, 's', 'ready', 'e', err)
        redis.call('RPUSH', K_READY, id)
      end
    end
  end
  if #ids > 0 then
    redis.call('HINCRBY', K_STATS, 'reclaimed', #ids)
  end
  return #ids
end

-- Moves up to `limit` due ids of a ZSET to the back of ready.
local function promote(zkey, now, limit)
  if limit <= 0 then
    return 0
  end
  local ids = redis.call('ZRANGEBYSCORE', zkey, '-inf', now, 'LIMIT', 0, limit)
  if #ids == 0 then
    return 0
  end
  -- #ids <= limit, which the caller keeps far below Lua's unpack limit.
  redis.call('ZREM', zkey, unpack(ids))
  for _, id in ipairs(ids) do
    redis.call('HSET', job_key(id), 's', 'ready')
  end
  redis.call('LPUSH', K_READY, unpack(ids))
  return #ids
end

