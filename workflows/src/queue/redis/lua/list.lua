-- list: one page of jobs in a state, optionally of one kind.
-- ARGV: 1 BASE, 2 status, 3 offset, 4 limit, 5 kind ('' = any), 6 max scan, 7 with args (1|0)
-- Examines at most `max scan` entries from `offset`; returns {next offset or -1, rows...}
-- (15 fields per row). Pending jobs are listed next-to-run first, running by lease deadline,
-- scheduled and failed by due time, dead, done and cancelled newest first.
local status = ARGV[2]
local offset = tonumber(ARGV[3])
local limit = tonumber(ARGV[4])
local kind = ARGV[5]
local max_scan = tonumber(ARGV[6])
local with_args = ARGV[7] == '1'
local stop = offset + max_scan - 1

local ids = {}
local bare = nil
if status == 'pending' then
  local r = redis.call('LRANGE', K_READY, -(offset + max_scan), -(offset + 1))
  for i = #r, 1, -1 do
    ids[#ids + 1] = r[i]
  end
elseif status == 'running' then
  ids = redis.call('ZRANGE', K_LEASES, offset, stop)
elseif status == 'scheduled' then
  ids = redis.call('ZRANGE', K_DELAYED, offset, stop)
elseif status == 'failed' then
  ids = redis.call('ZRANGE', K_RETRY, offset, stop)
elseif status == 'dead' then
  ids = redis.call('ZREVRANGE', K_DEAD, offset, stop)
elseif status == 'done' or status == 'cancelled' then
  local zkey = K_DONE
  if status == 'cancelled' then
    zkey = K_CANCELLED
  end
  local r = redis.call('ZREVRANGE', zkey, offset, stop, 'WITHSCORES')
  bare = {}
  for i = 1, #r, 2 do
    ids[#ids + 1] = r[i]
    bare[#ids] = r[i + 1]
  end
else
  return redis.error_reply('unknown status ' .. status)
end

local out = {-1}
local found, scanned = 0, 0
for idx, id in ipairs(ids) do
  scanned = idx
  local row = nil
  if bare then
    -- Only ids are kept: a kind filter matches none of them.
    if kind == '' then
      row = bare_row(id, status, bare[idx])
    end
  else
    row = job_row(id, with_args)
    if row then
      if status == 'pending' and row[2] ~= 'ready' then
        row = nil
      elseif kind ~= '' and row[5] ~= kind then
        row = nil
      end
    end
  end
  if row then
    for f = 1, 15 do
      out[#out + 1] = row[f]
    end
    found = found + 1
    if found >= limit then
      break
    end
  end
end
if scanned < #ids or #ids == max_scan then
  out[1] = offset + scanned
end
return out
