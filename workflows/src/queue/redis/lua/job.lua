-- job: one job's row (see rows.lua), or an empty array when it has no envelope.
-- ARGV: 1 BASE, 2 id, 3 with args (1|0)
local row = job_row(ARGV[2], ARGV[3] == '1')
if not row then
  return {}
end
return row
