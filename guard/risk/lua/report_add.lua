-- Add one batch of increments to a day's report hash and (re)set the hash's expiry, in one call.
-- KEYS[1]: the day's hash.  ARGV[1]: expiry (unix seconds);  ARGV[2..]: field, increment, field, …
-- Returns the new value of every field, in the order given.
local key = KEYS[1]
local out = {}
for i = 2, #ARGV, 2 do
  out[#out + 1] = redis.call('HINCRBY', key, ARGV[i], ARGV[i + 1])
end
redis.call('EXPIREAT', key, ARGV[1])
return out
