-- A failed job records its error and gives its wallet's cap slot back, once; an ended job is
-- left as it is. Returns 1, or 0 when the job had ended already.
--
-- KEYS[1] job: the job record hash
-- ARGV[1] error: the job's error (JSON)
-- ARGV[2] minted_template: key template of a wallet's live mints ({} = collection, {} = recipient)
-- include: unless_ended
-- include: key_template

redis.call('HSET', KEYS[1], 'error', ARGV[1])
if redis.call('HSETNX', KEYS[1], 'cap_released', '1') == 1 then
  local collection = redis.call('HGET', KEYS[1], 'collection')
  local recipient = redis.call('HGET', KEYS[1], 'recipient')
  if collection and recipient then
    local counter = key_from(ARGV[2], collection, string.lower(recipient))
    if tonumber(redis.call('GET', counter) or '0') > 0 then redis.call('DECR', counter) end
  end
end
return 1
