-- A stage's output and timing; an ended job's record is final (status reads keep its answer).
-- Returns 1, or 0 when the job had ended already.
--
-- KEYS[1] job: the job record hash
-- ARGV[1] output_field: the stage's output field (stage:<name>)
-- ARGV[2] output: the stage's output (JSON)
-- ARGV[3] timing_field: the stage's timing field (time:<name>)
-- ARGV[4] seconds: how long the stage took
-- include: unless_ended

redis.call('HSET', KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4])
return 1
