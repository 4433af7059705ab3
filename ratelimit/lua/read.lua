-- Read-only: the frozen switch and (used, attempts) of each counter of one account.
-- KEYS[1] frozen switch; KEYS[2…] counter hashes. Returns {frozen, used1, attempts1, …}.

local out = {redis.call('EXISTS', KEYS[1])}
for i = 2, #KEYS do
  local values = redis.call('HMGET', KEYS[i], 'u', 'a')
  out[#out + 1] = tonumber(values[1]) or 0
  out[#out + 1] = tonumber(values[2]) or 0
end
return out
