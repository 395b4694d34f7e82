
-- Creating jobs, shared by push and ack (an acknowledged job may hand on jobs of its own).
-- A batch collects what one script call creates; `creates_flush` writes its ready and delayed
-- ids with one variadic call each.
local function creates_new()
  return {ready = {}, delayed = {}}
end

local function creates_flush(batch)
  if #batch.ready > 0 then
    redis.call('LPUSH', K_READY, unpack(batch.ready))
  end
  if #batch.delayed > 0 then
    redis.call('ZADD', K_DELAYED, unpack(batch.delayed))
  end
  local created = #batch.ready + #batch.delayed / 2
  if created > 0 then
    redis.call('HINCRBY', K_STATS, 'enqueued', created)
  end
  batch.ready, batch.delayed = {}, {}
end

-- One job from the 8 arguments at ARGV[i]: id, args, max attempts, kind, idempotency key,
-- run-at ms (0 = now), metadata JSON, check id (1 when the caller chose the id: an existing
-- job with it is kept); '' for an absent kind, key or metadata. A job whose idempotency key
-- already points at a job is not created. Returns the job's id (the existing one's for a
-- duplicate) and 1 if it was created, else 0. Callers flush at most every 500 jobs.
local function create_job(batch, now, i)
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
    return existing, 0
  end
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
    batch.delayed[#batch.delayed + 1] = run_at
    batch.delayed[#batch.delayed + 1] = id
  else
    batch.ready[#batch.ready + 1] = id
  end
  return id, 1
end
