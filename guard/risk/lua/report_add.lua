-- Add one batch of increments to a day's report hash and (re)set the hash's expiry, in one call, at most
-- once per (writer, batch number): KEYS[2] keeps each writer's last applied batch number for the day, so
-- a batch sent again (a retry after a lost answer, or a call that timed out but ran later) adds nothing.
-- A writer sends its batches for a day one at a time, in increasing order.
-- KEYS[1]: the day's hash;  KEYS[2]: the day's applied batches (same hash slot).
-- ARGV[1]: expiry (unix seconds);  ARGV[2]: the writer;  ARGV[3]: the batch number;
-- ARGV[4..]: field, increment, field, …
-- Returns the value of every field after the batch, in the order given.
local key = KEYS[1]
local out = {}
local last = tonumber(redis.call('HGET', KEYS[2], ARGV[2]) or '0')
if tonumber(ARGV[3]) <= last then
  for i = 4, #ARGV, 2 do
    out[#out + 1] = tonumber(redis.call('HGET', key, ARGV[i]) or '0')
  end
  return out
end
for i = 4, #ARGV, 2 do
  out[#out + 1] = redis.call('HINCRBY', key, ARGV[i], ARGV[i + 1])
end
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
redis.call('EXPIREAT', key, ARGV[1])
redis.call('EXPIREAT', KEYS[2], ARGV[1])
return out
