-- A failed job records its error and gives its wallet's cap slot back, once; an ended job is
-- left as it is. Returns 1, or 0 when the job had ended already.
--
-- KEYS[1] job: the job record hash
-- ARGV[1] error: the job's error (JSON)
-- include: unless_ended

redis.call('HSET', KEYS[1], 'error', ARGV[1])
if redis.call('HSETNX', KEYS[1], 'cap_released', '1') == 1 then
  -- The counter accept.lua counted the job under (jobs/keys.py minted_key), kept in the record.
  local counter = redis.call('HGET', KEYS[1], 'cap_key')
  if counter then
    if tonumber(redis.call('GET', counter) or '0') > 0 then redis.call('DECR', counter) end
  end
end
return 1
