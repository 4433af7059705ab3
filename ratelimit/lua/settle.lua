-- Settle a hit whose answer the guard never got (it timed out, or the connection broke after the hit was
-- written), run once the hit's deadline has passed: the guard answered without it, so if it ran, undo it.
-- Idempotent: the token is consumed.
--
-- KEYS[1]  the account's recent attempt tokens of the guard process that made the hit (hit.lua)
-- KEYS[2]  idempotency record of the request (unused when ARGV[2] is '0')
-- KEYS[3…] the hit's counter hashes
-- ARGV[1]  the hit's token; ARGV[2] has request id '1'|'0'; ARGV[3…] the hit's cost per counter
--
-- Returns 1: it ran and charged, undone (used and attempts given back, never below zero, the request
-- record released if it is this hit's); 2: it ran and was refused, its attempt taken back; 0: no trace
-- (it never ran, or ran so long ago that the token is forgotten).

local token = ARGV[1]
local charged = redis.call('LREM', KEYS[1], 1, token .. ':1') == 1
if not charged and redis.call('LREM', KEYS[1], 1, token .. ':0') == 0 then
  return 0
end

if ARGV[2] == '1' then
  local record = redis.call('GET', KEYS[2])
  if record and string.sub(record, -(#token + 1)) == '\n' .. token then
    redis.call('DEL', KEYS[2])
  end
end

for i = 3, #KEYS do
  local cost = tonumber(ARGV[i])
  local back = {a = cost}
  if charged then
    back.u = cost
  end
  for field, amount in pairs(back) do
    if amount > 0 then
      local value = tonumber(redis.call('HGET', KEYS[i], field))
      if value then
        redis.call('HSET', KEYS[i], field, math.max(0, value - amount))
      end
    end
  end
end
return charged and 1 or 2
