-- push: create jobs.
-- ARGV: 1 BASE, then groups of 8, one per job (see create_job). At most 500 groups per call.
-- A job whose idempotency key already points at a job is not created: the existing id is
-- returned instead. Returns {id, created (1|0), ...}.
local now = now_ms()
local out = {}
local batch = creates_new()
for i = 2, #ARGV, 8 do
  local id, created = create_job(batch, now, i)
  out[#out + 1] = id
  out[#out + 1] = created
end
creates_flush(batch)
return out
