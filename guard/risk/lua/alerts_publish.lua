-- Publish one alert: the claim and the XADD in one call (a claim without its alert would suppress the alert
-- for the whole window). The entry also records the id of the entry before it (`p`), so a reader resuming
-- from an id the cap has trimmed away can be told exactly that it missed alerts.
-- The claim holds the publisher's token and the new entry's id: the same publisher calling again with the
-- same token (a retry after a lost answer, or a call that timed out but ran later) gets the first id back,
-- never a second entry; any other publisher within the lifetime gets false (a duplicate).
-- KEYS[1]: the stream;  KEYS[2]: the claim (per dedup key; per token when the alert has no dedup);
-- KEYS[3]: the id of the newest entry.
-- ARGV[1]: the alert (JSON);  ARGV[2]: the claim's lifetime in ms;  ARGV[3]: MAXLEN (~);  ARGV[4]: the token.
-- Returns the entry's id, or false when another publisher's claim within the lifetime exists.
local claim = redis.call('GET', KEYS[2])
if claim then
  local mine = ARGV[4] .. ' '
  if string.sub(claim, 1, #mine) == mine then return string.sub(claim, #mine + 1) end
  return false
end
local prev = redis.call('GET', KEYS[3]) or '0-0'
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[3], '*', 'a', ARGV[1], 'p', prev)
redis.call('SET', KEYS[3], id)
redis.call('SET', KEYS[2], ARGV[4] .. ' ' .. id, 'PX', ARGV[2])
return id
