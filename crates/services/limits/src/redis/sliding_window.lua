-- The approximated sliding window on one key, on the server's clock, in
-- milliseconds. Mirrors `sliding_window` in rule.rs line by line.
-- KEYS[1]: the key (a hash: i = window index, c = its count, p = the previous one's)
-- ARGV: limit, window_ms, cost, consume (1 or 0)
-- Returns {allowed (1/0), remaining, retry_after_ms, reset_after_ms}.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local limit, w, cost = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local consume = ARGV[4] == '1'
local index = math.floor(now / w)
local e = now - index * w
local s = redis.call('HMGET', KEYS[1], 'i', 'c', 'p')
local si, curr, prev = tonumber(s[1]), 0, 0
if si == index then
  curr, prev = tonumber(s[2]) or 0, tonumber(s[3]) or 0
elseif si == index - 1 then
  prev = tonumber(s[2]) or 0
end
local used = prev * (w - e) + curr * w
local allowed = used + cost * w <= limit * w
if allowed and consume then
  curr = curr + cost
  redis.call('HSET', KEYS[1], 'i', string.format('%d', index), 'c', curr, 'p', prev)
  redis.call('PEXPIRE', KEYS[1], 2 * w - e)
  used = prev * (w - e) + curr * w
end
local retry = 0
if not allowed then
  if curr + cost <= limit then
    retry = (w - math.floor((limit - curr - cost) * w / prev)) - e
  else
    retry = (w - e) + (w - math.floor(math.max(0, limit - cost) * w / math.max(1, curr)))
  end
end
local reset = 0
if curr > 0 then
  reset = 2 * w - e
elseif prev > 0 then
  reset = w - e
end
return {allowed and 1 or 0, math.floor(math.max(0, limit * w - used) / w), retry, reset}
