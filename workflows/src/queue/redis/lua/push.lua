-- push: create jobs.
-- ARGV: 1 BASE, then groups of 8: id, args, max attempts, kind, idempotency key, run-at ms
--       (0 = now), metadata JSON, check id (1 when the caller chose the id: an existing job
--       with it is kept); '' for an absent kind, key or metadata.
-- A job whose idempotency key already points at a job is not created: the existing id is
-- returned instead. Returns {id, created (1|0), ...}. At most 500 groups per call.
local now = now_ms()
local out = {}
local ready = {}
local delayed = {}
for i = 2, #ARGV, 8 do
  local id, args, max, kind, ik, run_at, md, check =
    ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4], tonumber(ARGV[i + 5]), ARGV[i + 6], ARGV[i + 7]
  local existing = false
  if ik ~= '' then
    existing = redis.call('GET', ikey_key(ik))
    if not existing then
      redis.call('SET', ikey_key(ik), id)
    end
  end
  if not existing and check == '1' and redis.call('EXISTS', job_key(id)) == 1 then
    existing = id
  end
  if existing then
    out[#out + 1] = existing
    out[#out + 1] = 0
  else
    local state = 'ready'
    if run_at > now then
      state = 'delayed'
    else
      run_at = now
    end
    local f = {'a', args, 'n', 0, 'm', max, 'c', now, 'r', run_at, 's', state}
    if kind ~= '' then
      f[#f + 1] = 'k'
      f[#f + 1] = kind
    end
    if ik ~= '' then
      f[#f + 1] = 'i'
      f[#f + 1] = ik
    end
    if md ~= '' then
      f[#f + 1] = 'md'
      f[#f + 1] = md
    end
    redis.call('HSET', job_key(id), unpack(f))
    if state == 'delayed' then
      delayed[#delayed + 1] = run_at
      delayed[#delayed + 1] = id
    else
      ready[#ready + 1] = id
    end
    out[#out + 1] = id
    out[#out + 1] = 1
  end
end
-- One variadic call each, over at most 500 ids (1000 arguments).
if #ready > 0 then
  redis.call('LPUSH', K_READY, unpack(ready))
end
if #delayed > 0 then
  redis.call('ZADD', K_DELAYED, unpack(delayed))
end
local created = #ready + #delayed / 2
if created > 0 then
  redis.call('HINCRBY', K_STATS, 'enqueued', created)
end
return out
