-- Give back charges, never below zero; release the request's idempotency record.
--
-- KEYS[1]  idempotency record (used when ARGV[1] is '1'); KEYS[2…] counter hashes
-- ARGV[1]  has request id '1'|'0'; ARGV[2…] cost to give back per counter
--
-- With a request id the refund happens only if the record still exists, so refunding the same
-- request twice (or a retry of it) gives back once. Counters that expired are left alone: a refund
-- never creates a key without an expiry.
-- Returns 1 when refunded, 0 when there was nothing to refund.

if ARGV[1] == '1' and redis.call('DEL', KEYS[1]) == 0 then
  return 0
end
for i = 2, #KEYS do
  local cost = tonumber(ARGV[i])
  if cost > 0 then
    local used = tonumber(redis.call('HGET', KEYS[i], 'u'))
    if used then
      local left = used - cost
      if left < 0 then
        left = 0
      end
      redis.call('HSET', KEYS[i], 'u', left)
    end
  end
end
return 1
