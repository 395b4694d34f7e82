-- ack: settle finished attempts.
-- ARGV: 1 BASE, 2 worker, 3 done keep, 4 dead keep, 5 idempotency retention ms,
--       then groups of 6: id, attempt, outcome ('ok' | 'retry' | 'dead'), retry delay ms,
--       error, has idempotency key (1|0). At most 500 groups per call.
-- An attempt is settled only if the lease is still held by this worker for this attempt;
-- otherwise (lease expired and the job reclaimed) the report is stale and ignored.
-- Returns {settled, stale}.
local worker = ARGV[2]
local done_keep = tonumber(ARGV[3])
local dead_keep = tonumber(ARGV[4])
local retention_ms = tonumber(ARGV[5])
local ids = {}
for i = 6, #ARGV, 6 do
  ids[#ids + 1] = ARGV[i]
end
if #ids == 0 then
  return {0, 0}
end
local now = now_ms()
local tokens = redis.call('HMGET', K_HOLDERS, unpack(ids))
local settled = {}
local gone = {}
local stale, done = 0, 0
for j, id in ipairs(ids) do
  local g = 6 + (j - 1) * 6
  local n, outcome, delay, err, has_ik =
    ARGV[g + 1], ARGV[g + 2], tonumber(ARGV[g + 3]), ARGV[g + 4], ARGV[g + 5]
  if tokens[j] ~= worker .. '#' .. n then
    stale = stale + 1
  else
    settled[#settled + 1] = id
    if outcome == 'ok' then
      done = done + 1
      if has_ik == '1' then
        forget(id, retention_ms)
      else
        gone[#gone + 1] = job_key(id)
      end
      if done_keep > 0 then
        redis.call('ZADD', K_DONE, now, id)
      end
    elseif outcome == 'dead' then
      to_dead(id, now, err, dead_keep, retention_ms)
    else
      local jk = job_key(id)
      local v = redis.call('HMGET', jk, 'n', 'm')
      if tonumber(v[1]) >= tonumber(v[2]) then
        to_dead(id, now, err, dead_keep, retention_ms)
      else
        local at = now + delay
        redis.call('HSET', jk, 's', 'retry', 'r', at, 'e', err)
        redis.call('ZADD', K_RETRY, at, id)
      end
    end
  end
end
-- One variadic call each, over at most 500 ids.
if #settled > 0 then
  redis.call('ZREM', K_LEASES, unpack(settled))
  redis.call('HDEL', K_HOLDERS, unpack(settled))
end
if #gone > 0 then
  redis.call('DEL', unpack(gone))
end
if done > 0 then
  redis.call('HINCRBY', K_STATS, 'done', done)
  if done_keep > 0 then
    trim_oldest(K_DONE, done_keep, done + 100)
  end
end
return {#settled, stale}
