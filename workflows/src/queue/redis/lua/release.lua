-- release: give back leased jobs that were never started (graceful close): to the front of
-- ready, with the attempt the lease counted taken back.
-- ARGV: 1 BASE, 2 worker, then pairs id, attempt, in the order they would have run.
-- Returns how many were released.
local worker = ARGV[2]
local released = 0
-- Walk backwards so the first job ends up at the very front (RPOP end) of ready.
local last = #ARGV - ((#ARGV - 2) % 2)
for i = last - 1, 3, -2 do
  local id, n = ARGV[i], ARGV[i + 1]
  if redis.call('HGET', K_HOLDERS, id) == worker .. '#' .. n then
    redis.call('ZREM', K_LEASES, id)
    redis.call('HDEL', K_HOLDERS, id)
    local jk = job_key(id)
    redis.call('HINCRBY', jk, 'n', -1)
    redis.call('HSET', jk, 's', 'ready')
    redis.call('RPUSH', K_READY, id)
    released = released + 1
  end
end
return released
