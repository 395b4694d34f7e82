-- renew: extend the leases this worker still holds and mark the worker alive.
-- ARGV: 1 BASE, 2 worker, 3 lease ms, then pairs id, attempt.
-- Returns {id, attempt, ...} for the leases this worker no longer holds (expired and
-- reclaimed, or settled meanwhile).
local worker = ARGV[2]
local now = now_ms()
local deadline = now + tonumber(ARGV[3])
redis.call('ZADD', K_WORKERS, now, worker)
local lost = {}
for i = 4, #ARGV - 1, 2 do
  local id, n = ARGV[i], ARGV[i + 1]
  if redis.call('HGET', K_HOLDERS, id) == worker .. '#' .. n then
    redis.call('ZADD', K_LEASES, 'XX', deadline, id)
  else
    lost[#lost + 1] = id
    lost[#lost + 1] = n
  end
end
return lost
