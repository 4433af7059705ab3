-- Give back charges, never below zero; release the request's idempotency record.
--
-- KEYS[1]  idempotency record (used when ARGV[1] is '1'); KEYS[2…] counter hashes
-- ARGV[1]  has request id '1'|'0'; ARGV[2…#KEYS] cost to give back per counter, then one number per
--          counter to take back from its attempts (a hit the platform asked to retry counts as no try),
--          then the deadline (µs on this server's clock, as in hit.lua; '0' or absent: none)
--
-- With a request id the refund happens only if the record still exists, so refunding the same
-- request twice (or a retry of it) gives back once. Counters that expired are left alone: a refund
-- never creates a key without an expiry.
-- Returns 1 when refunded, 0 when there was nothing to refund, -1 when run after the deadline (nothing
-- done: the guard gave up on this call and will try it again).

-- TIME before writes: effects replication (the default since Redis 5; asked for on older ones).
if redis.replicate_commands then
  redis.replicate_commands()
end

local n = #KEYS - 1
local deadline = tonumber(ARGV[2 + 2 * n]) or 0
if deadline > 0 then
  local now = redis.call('TIME')
  if tonumber(now[1]) * 1000000 + tonumber(now[2]) > deadline then
    return -1
  end
end

if ARGV[1] == '1' and redis.call('DEL', KEYS[1]) == 0 then
  return 0
end
for i = 2, #KEYS do
  local cost = tonumber(ARGV[i])
  local tries = tonumber(ARGV[i + n]) or 0
  for field, back in pairs({u = cost, a = tries}) do
    if back > 0 then
      local value = tonumber(redis.call('HGET', KEYS[i], field))
      if value then
        redis.call('HSET', KEYS[i], field, math.max(0, value - back))
      end
    end
  end
end
return 1
