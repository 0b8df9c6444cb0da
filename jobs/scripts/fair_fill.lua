-- Shared by fair_admit and fair_release (no KEYS or ARGV of its own): fair_fill(admitted, waiting,
-- per_tenant) moves the oldest waiting jobs into the admitted set while it has room, and returns
-- their ids, oldest first.

local function fair_fill(admitted_key, waiting_key, per_tenant)
  local moved = {}
  local room = per_tenant - redis.call('SCARD', admitted_key)
  if room <= 0 then return moved end
  local oldest = redis.call('ZRANGE', waiting_key, 0, room - 1)
  for _, job_id in ipairs(oldest) do
    redis.call('ZREM', waiting_key, job_id)
    redis.call('SADD', admitted_key, job_id)
    table.insert(moved, job_id)
  end
  return moved
end
