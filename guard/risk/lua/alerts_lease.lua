-- Take or renew a lease (one process of many runs a sink).
-- KEYS[1]: the lease;  ARGV[1]: the owner;  ARGV[2]: lifetime in ms.
-- Returns 1 when `owner` now holds the lease, 0 while another owner holds it.
local holder = redis.call('GET', KEYS[1])
if holder == false or holder == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
