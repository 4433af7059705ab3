-- Check every counter of one request and charge them all only if every enforce-mode rule passes.
--
-- KEYS[1]  frozen switch of the account
-- KEYS[2]  idempotency record of the request (unused when ARGV[2] is '0')
-- KEYS[3]  the account's recent attempt tokens of this guard process (a list, newest first): how it
--          learns later whether a hit whose answer it lost (timed out, connection broke) ran — settle.lua
-- KEYS[4…] one hash per rule and window: u = used, a = attempts, f = thresholds already reported
-- ARGV[1] dry run '1'|'0'; ARGV[2] has request id '1'|'0'; ARGV[3] record ttl (s); ARGV[4] descriptor
-- ARGV[5…4+n] one per rule: 'limit:warn_at:alert_over:enforce:cost:ttl' (warn_at / alert_over -1: none;
--          enforce 1|0; ttl in seconds). One packed argument per rule keeps the call cheap to encode.
-- ARGV[5+n] token of this attempt ('' for none), stored with the request record and in KEYS[3] as
--          'token:1' (charged) or 'token:0' (refused)
-- ARGV[6+n] deadline: microseconds since the epoch on this server's clock (TIME) after which the guard
--          has given up on this call; run later, the script does nothing ('0' or absent: none)
--
-- Returns {0, allowed, used, attempts, crossed, allowed_rule, …}  done
--         {1, 0}                                                  account frozen, nothing charged
--         {2, descriptor, numbers, token}                         a retry: the first hit's answer
--         {3}                                                     past the deadline: nothing done
-- crossed is a mask: 1 warn_at reached, 2 first attempt over the limit, 4 attempts passed alert_over;
-- each is reported once per window (remembered in field f).

-- TIME before writes: effects replication (the default since Redis 5; asked for on older ones).
if redis.replicate_commands then
  redis.replicate_commands()
end

local n = #KEYS - 3

-- Past its deadline the guard has already answered without this call (refused, or allowed uncounted):
-- charging now would charge an action that was never sent.
local deadline = tonumber(ARGV[6 + n]) or 0
if deadline > 0 then
  local now = redis.call('TIME')
  if tonumber(now[1]) * 1000000 + tonumber(now[2]) > deadline then
    return {3}
  end
end

local dry = ARGV[1] == '1'
local has_request = ARGV[2] == '1'

-- Frozen first: a freeze refuses even the retry of a request charged before it.
if redis.call('EXISTS', KEYS[1]) == 1 then
  return {1, 0}
end

if has_request then
  local record = redis.call('GET', KEYS[2])
  if record then
    local cut = string.find(record, '\n', 1, true)
    local rest = string.sub(record, cut + 1)
    local second = string.find(rest, '\n', 1, true)
    if second then
      return {2, string.sub(record, 1, cut - 1), string.sub(rest, 1, second - 1), string.sub(rest, second + 1)}
    end
    return {2, string.sub(record, 1, cut - 1), rest, ''}
  end
end

local specs = {}
for i = 1, n do
  local spec = {}
  for value in string.gmatch(ARGV[4 + i], '[^:]+') do
    spec[#spec + 1] = tonumber(value)
  end
  specs[i] = spec
end

local used, attempts, flags, fresh, pass = {}, {}, {}, {}, {}
local allowed = true
for i = 1, n do
  local limit = specs[i][1]
  local cost = specs[i][5]
  local values = redis.call('HMGET', KEYS[i + 3], 'u', 'a', 'f')
  fresh[i] = not values[1] and not values[2] and not values[3]
  used[i] = tonumber(values[1]) or 0
  attempts[i] = tonumber(values[2]) or 0
  flags[i] = tonumber(values[3]) or 0
  pass[i] = used[i] + cost <= limit
  if not pass[i] and specs[i][4] == 1 then
    allowed = false
  end
end

local out = {0, allowed and 1 or 0}
local numbers = {allowed and 1 or 0}
for i = 1, n do
  local warn_at = specs[i][2]
  local alert_over = specs[i][3]
  local cost = specs[i][5]
  local new_used = used[i]
  if allowed then
    new_used = used[i] + cost
  end
  local new_attempts = attempts[i] + cost
  local crossed = 0
  if warn_at >= 0 and new_used >= warn_at and flags[i] % 2 == 0 and allowed then
    crossed = crossed + 1
  end
  if not pass[i] and math.floor(flags[i] / 2) % 2 == 0 then
    crossed = crossed + 2
  end
  if alert_over >= 0 and new_attempts > alert_over and math.floor(flags[i] / 4) % 2 == 0 then
    crossed = crossed + 4
  end
  if not dry then
    local key = KEYS[i + 3]
    if allowed and cost ~= 0 then
      redis.call('HINCRBY', key, 'u', cost)
    end
    redis.call('HINCRBY', key, 'a', cost)
    if crossed ~= 0 then
      redis.call('HSET', key, 'f', flags[i] + crossed)
    end
    if fresh[i] then
      redis.call('EXPIRE', key, specs[i][6])
    end
  end
  local rule_pass = pass[i] and 1 or 0
  out[#out + 1] = new_used
  out[#out + 1] = new_attempts
  out[#out + 1] = crossed
  out[#out + 1] = rule_pass
  numbers[#numbers + 1] = new_used
  numbers[#numbers + 1] = new_attempts
  numbers[#numbers + 1] = crossed
  numbers[#numbers + 1] = rule_pass
end

local token = ARGV[5 + n] or ''
if token ~= '' and not dry then
  -- This process's last 1024 tokens for the account, kept for 10 minutes after its last hit: room for
  -- every hit the process makes between losing an answer and settling it (settles go first).
  local length = redis.call('LPUSH', KEYS[3], token .. (allowed and ':1' or ':0'))
  if length > 1024 then
    redis.call('LTRIM', KEYS[3], 0, 1023)
  end
  redis.call('EXPIRE', KEYS[3], 600)
end

if has_request and not dry then
  local record = ARGV[4] .. '\n' .. table.concat(numbers, ',') .. '\n' .. (ARGV[5 + n] or '')
  redis.call('SET', KEYS[2], record, 'EX', tonumber(ARGV[3]))
end
return out
