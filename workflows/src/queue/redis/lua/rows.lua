-- One job as the console sees it: 15 fields
--   id, state, attempt, max_attempts, kind, ikey, created, run_at, error, finished_at,
--   leased_at, holder, lease deadline, metadata, args (false unless asked for)
-- or nil when the job has no envelope (done, cancelled or purged).
local function job_row(id, with_args)
  local v = redis.call('HMGET', job_key(id), 's', 'n', 'm', 'k', 'i', 'c', 'r', 'e', 'f', 'l', 'md', 'a')
  if not v[1] then
    return nil
  end
  local holder, deadline = false, false
  if v[1] == 'running' then
    holder = redis.call('HGET', K_HOLDERS, id)
    deadline = redis.call('ZSCORE', K_LEASES, id)
  end
  local args = false
  if with_args then
    args = v[12]
  end
  return {id, v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8], v[9], v[10], holder, deadline, v[11], args}
end

-- An id-only row (done and cancelled jobs keep no envelope).
local function bare_row(id, state, at)
  return {id, state, false, false, false, false, false, false, false, at, false, false, false, false, false}
end
