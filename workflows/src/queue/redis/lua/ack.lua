-- ack: settle finished attempts, and create the jobs a finished attempt hands on.
-- ARGV: 1 BASE, 2 worker, 3 done keep, 4 dead keep, 5 idempotency retention ms,
--       then per attempt: id, attempt, outcome ('ok' | 'retry' | 'dead'), retry delay ms,
--       error, has idempotency key (1|0), and the number k of jobs it hands on, followed by
--       k groups of 8 job arguments (see create_job). At most 500 attempts per call.
-- An attempt is settled only if the lease is still held by this worker for this attempt;
-- otherwise (lease expired and the job reclaimed) the report is stale and ignored, and so
-- are the jobs it hands on: whoever runs the job again hands them on. The jobs of an 'ok'
-- attempt are created in the same call that settles it, so the hand-over is atomic: a lost
-- acknowledgement loses both, and the job runs again.
-- Returns {settled, stale, created}.
local worker = ARGV[2]
local done_keep = tonumber(ARGV[3])
local dead_keep = tonumber(ARGV[4])
local retention_ms = tonumber(ARGV[5])
local ids = {}
local starts = {}
local i = 6
while i <= #ARGV do
  ids[#ids + 1] = ARGV[i]
  starts[#starts + 1] = i
  i = i + 7 + 8 * tonumber(ARGV[i + 6])
end
if #ids == 0 then
  return {0, 0, 0}
end
local now = now_ms()
local tokens = redis.call('HMGET', K_HOLDERS, unpack(ids))
local settled = {}
local gone = {}
local stale, done, created = 0, 0, 0
local batch = creates_new()
local pending = 0
for j, id in ipairs(ids) do
  local g = starts[j]
  local n, outcome, delay, err, has_ik, hands =
    ARGV[g + 1], ARGV[g + 2], tonumber(ARGV[g + 3]), ARGV[g + 4], ARGV[g + 5], tonumber(ARGV[g + 6])
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
      for h = 0, hands - 1 do
        local _, new = create_job(batch, now, g + 7 + 8 * h)
        created = created + new
        pending = pending + 1
        if pending >= 500 then
          creates_flush(batch)
          pending = 0
        end
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
creates_flush(batch)
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
return {#settled, stale, created}
