-- Check several rate-limit buckets at once: all pass and are charged, or none is.
-- Returns {allowed, retry_after_ms, remaining of the first bucket}.
--
-- KEYS[1..n] bucket: the buckets, in the order of their ARGV pairs
-- ARGV[1..2n] interval_ms, burst: each bucket's emission interval and burst, pair i for KEYS[i]
-- include: gcra

local limits = {}
for i = 1, #KEYS do
  limits[i] = {KEYS[i], ARGV[2 * i - 1], ARGV[2 * i]}
end
return gcra(limits, now_ms())
