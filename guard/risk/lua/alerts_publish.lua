-- Publish one alert: the dedup claim and the XADD in one call (a claim without its alert would suppress
-- the alert for the whole window). The entry also records the id of the entry before it (`p`), so a
-- reader resuming from an id the cap has trimmed away can be told exactly that it missed alerts.
-- KEYS[1]: the stream;  KEYS[2]: the dedup claim;  KEYS[3]: the id of the newest entry.
-- ARGV[1]: the alert (JSON);  ARGV[2]: dedup lifetime in ms ('0': no dedup);  ARGV[3]: MAXLEN (~);
-- ARGV[4]: the dedup key (the claim's value).
-- Returns the new entry's id, or false when a claim within the lifetime exists (a duplicate).
if ARGV[2] ~= '0' then
  if not redis.call('SET', KEYS[2], ARGV[4], 'NX', 'PX', ARGV[2]) then return false end
end
local prev = redis.call('GET', KEYS[3]) or '0-0'
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[3], '*', 'a', ARGV[1], 'p', prev)
redis.call('SET', KEYS[3], id)
return id
