-- fetch: reclaim expired leases, promote due jobs, lease up to `batch` ready jobs.
-- ARGV: 1 BASE, 2 worker, 3 batch (<= 1000), 4 lease ms, 5 promote limit, 6 reclaim limit,
--       7 dead keep, 8 idempotency retention ms
-- Returns {now, id, attempt, args, max_attempts, kind, ikey, run_at, meta, ...}
-- (8 fields per leased job; absent optional fields are false).
local worker = ARGV[2]
local batch = tonumber(ARGV[3])
local lease_ms = tonumber(ARGV[4])
local promote_limit = tonumber(ARGV[5])
local reclaim_limit = tonumber(ARGV[6])
local dead_keep = tonumber(ARGV[7])
local retention_ms = tonumber(ARGV[8])

local now = now_ms()
reclaim(now, reclaim_limit, dead_keep, retention_ms)
promote(K_RETRY, now, promote_limit)
promote(K_DELAYED, now, promote_limit)

local out = {now}
local ids = redis.call('RPOP', K_READY, batch)
if not ids then
  return out
end
local deadline = now + lease_ms
local leases = {}
local holders = {}
for _, id in ipairs(ids) do
  local jk = job_key(id)
  local v = redis.call('HMGET', jk, 's', 'a', 'm', 'k', 'i', 'r', 'md', 'n')
  local state = v[1]
  if state == 'ready' and v[2] then
    local n = (tonumber(v[8]) or 0) + 1
    redis.call('HSET', jk, 'n', n, 's', 'running', 'l', now)
    leases[#leases + 1] = deadline
    leases[#leases + 1] = id
    holders[#holders + 1] = id
    holders[#holders + 1] = worker .. '#' .. n
    out[#out + 1] = id
    out[#out + 1] = n
    out[#out + 1] = v[2]
    out[#out + 1] = v[3]
    out[#out + 1] = v[4]
    out[#out + 1] = v[5]
    out[#out + 1] = v[6]
    out[#out + 1] = v[7]
  elseif state == 'cancelled' then
    -- A job cancelled while ready left its id in the list (no LREM over the backlog): drop
    -- the tombstone now.
    redis.call('DEL', jk)
    redis.call('HINCRBY', K_STATS, 'tombstones', -1)
  elseif state and not v[2] then
    -- Not a job (its envelope was deleted by hand and a state written back): drop it.
    redis.call('DEL', jk)
  end
  -- Any other state (a stale duplicate id) is skipped: only a ready job is ever leased, so
  -- a job cannot be leased twice at once.
end
-- One variadic call each, over at most 2 * batch arguments.
if #leases > 0 then
  redis.call('ZADD', K_LEASES, unpack(leases))
  redis.call('HSET', K_HOLDERS, unpack(holders))
end
return out
