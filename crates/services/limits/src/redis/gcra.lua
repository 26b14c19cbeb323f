-- GCRA on one key, on the server's clock, in microseconds. Mirrors `gcra` in
-- rule.rs line by line.
-- KEYS[1]: the key (a string: the theoretical arrival time)
-- ARGV: interval_us, burst, cost, consume (1 or 0)
-- Returns {allowed (1/0), remaining, retry_after_us, reset_after_us}.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval, burst, cost = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local consume = ARGV[4] == '1'
local tolerance = burst * interval
local tat = tonumber(redis.call('GET', KEYS[1]) or now) or now
if tat < now then
  tat = now
end
local new_tat = tat + cost * interval
local allowed = new_tat <= now + tolerance
local after = tat
if allowed and consume then
  after = new_tat
  -- Kept until it no longer matters: once the arrival time has passed.
  redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX', math.floor((new_tat - now) / 1000) + 1)
end
local retry = 0
if not allowed then
  retry = new_tat - tolerance - now
end
return {allowed and 1 or 0, math.floor(math.max(0, now + tolerance - after) / interval), retry, after - now}
