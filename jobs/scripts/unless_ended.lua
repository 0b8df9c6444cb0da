-- An ended job stays ended: a late writer (a pipeline retry that saw 'minting' before the minter
-- confirmed) must not move it back or record its end twice. Included first by every script that
-- writes a job record, so the statuses here are the terminal members of jobs.model.JobStatus
-- (a unit test holds them to it). A record that is gone (an ended job's retention ran out) is
-- ended too: a late writer must not bring back a partial record that never expires.
--
-- KEYS[1] job: the job record hash

local current = redis.call('HGET', KEYS[1], 'status')
if not current or current == 'confirmed' or current == 'failed' or current == 'expired' then return 0 end
