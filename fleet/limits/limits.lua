-- cicfleet limits: every limited figure of every layer of one request, in one atomic call.
-- Same arithmetic as fleet/limits/memory.py (read counters.py for the model).
--
-- KEYS[i]        the counter of check i
-- ARGV[1]        op: "reserve" | "settle" | "renew"
-- ARGV[2]        now, ms since the epoch (passed in, so every replica and every test agrees)
-- ARGV[3]        reserve: tokens to reserve; settle: token correction (negative = refund);
--                renew: the lease's new deadline, ms
-- ARGV[4]        lease id
-- ARGV[5]        reserve: lease deadline, ms
-- ARGV[4+2i]     kind of check i: rpm | tpm | rpd | tpd | concurrency
-- ARGV[5+2i]     limit of check i
--
-- reserve returns {rejected (1-based index, 0 = admitted), retry_ms,
--                  tightest request check (index, remaining, reset_ms), tightest token check (same)}

local UNIT = 60000
local DAY_MS = 86400000
local CONCURRENCY_RETRY_MS = 1000
local NEVER = -1

local op = ARGV[1]
local now = tonumber(ARGV[2])
local amount = tonumber(ARGV[3])
local lease = ARGV[4]
local n = #KEYS

local function kind(i) return ARGV[4 + 2 * i] end
local function limit(i) return tonumber(ARGV[5 + 2 * i]) end
local function is_tokens(k) return k == 'tpm' or k == 'tpd' end
local function is_daily(k) return k == 'rpd' or k == 'tpd' end
local function ceil_div(a, b) return math.ceil(a / b) end
local function int(x) return string.format('%d', x) end

-- a per-minute counter is "level:last_ms"; it drains `limit` units per ms
local function read_rate(key, lim)
  local v = redis.call('GET', key)
  if not v then return 0, now end
  local colon = string.find(v, ':', 1, true)
  local level, last = tonumber(string.sub(v, 1, colon - 1)), tonumber(string.sub(v, colon + 1))
  local cur = level - lim * math.max(0, now - last)
  if cur < 0 then cur = 0 end
  return cur, math.max(now, last)
end

local function write_rate(key, level, last, lim)
  if level <= 0 then
    redis.call('DEL', key)
  else
    redis.call('SET', key, int(level) .. ':' .. int(last), 'PX', int(last - now + ceil_div(level, lim) + 1000))
  end
end

if op == 'reserve' then
  local day_end = (math.floor(now / DAY_MS) + 1) * DAY_MS
  local lease_until = tonumber(ARGV[5])
  local before, after, news, lasts = {}, {}, {}, {}
  local rejected, retry_ms, worst_class, worst_retry = 0, 0, -1, 0
  for i = 1, n do
    local k, lim = kind(i), limit(i)
    local cost = 1
    if is_tokens(k) then cost = amount end
    local ok, retry = true, 0
    if k == 'concurrency' then
      redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now)
      local held = redis.call('ZCARD', KEYS[i])
      ok = held < lim
      if not ok then retry = CONCURRENCY_RETRY_MS end
      before[i] = {math.max(0, lim - held), 0}
      after[i] = {math.max(0, lim - held - 1), 0}
    elseif is_daily(k) then
      local count = tonumber(redis.call('GET', KEYS[i]) or '0')
      local new = count + cost
      ok = new <= lim
      if not ok then
        if cost > lim then retry = NEVER else retry = day_end - now end
      end
      news[i] = new
      before[i] = {math.max(0, lim - count), day_end - now}
      after[i] = {math.max(0, lim - new), day_end - now}
    else
      local cur, last = read_rate(KEYS[i], lim)
      local cap = lim * UNIT
      local new = cur + cost * UNIT
      ok = new <= cap
      if not ok then
        if cost * UNIT > cap then retry = NEVER else retry = ceil_div(new - cap, lim) end
      end
      news[i], lasts[i] = new, last
      before[i] = {math.max(0, math.floor((cap - cur) / UNIT)), ceil_div(cur, lim)}
      after[i] = {math.max(0, math.floor((cap - new) / UNIT)), ceil_div(new, lim)}
    end
    if not ok then
      -- the caller hears about: a request that can never fit, then a daily quota, then the
      -- rate limit that takes longest to clear
      local class, r = 0, retry
      if retry == NEVER then class, r = 2, 0 elseif is_daily(k) then class = 1 end
      if class > worst_class or (class == worst_class and r > worst_retry) then
        worst_class, worst_retry, rejected, retry_ms = class, r, i, retry
      end
    end
  end
  local figures = after
  if rejected > 0 then
    figures = before
  else
    for i = 1, n do
      local k, lim = kind(i), limit(i)
      if k == 'concurrency' then
        redis.call('ZADD', KEYS[i], lease_until, lease)
        redis.call('PEXPIRE', KEYS[i], int(lease_until - now + UNIT))
      elseif is_daily(k) then
        redis.call('SET', KEYS[i], int(news[i]), 'PX', int(day_end - now + DAY_MS))
      else
        write_rate(KEYS[i], news[i], lasts[i], lim)
      end
    end
  end
  -- the tightest request figure (rpm/rpd) and token figure (tpm/tpd): fewest remaining,
  -- the first on a tie; 0 when there is none
  local best_r, best_t = 0, 0
  for i = 1, n do
    local k = kind(i)
    if k ~= 'concurrency' then
      if is_tokens(k) then
        if best_t == 0 or figures[i][1] < figures[best_t][1] then best_t = i end
      elseif best_r == 0 or figures[i][1] < figures[best_r][1] then
        best_r = i
      end
    end
  end
  local out = {rejected, retry_ms, best_r, 0, 0, best_t, 0, 0}
  if best_r > 0 then out[4], out[5] = figures[best_r][1], figures[best_r][2] end
  if best_t > 0 then out[7], out[8] = figures[best_t][1], figures[best_t][2] end
  return out
elseif op == 'settle' then
  for i = 1, n do
    local k, lim = kind(i), limit(i)
    if k == 'concurrency' then
      redis.call('ZREM', KEYS[i], lease)
    elseif amount ~= 0 and is_tokens(k) then
      if is_daily(k) then
        local count = redis.call('GET', KEYS[i])
        if count then
          local ttl = redis.call('PTTL', KEYS[i])
          redis.call('SET', KEYS[i], int(math.max(0, tonumber(count) + amount)), 'PX', math.max(1, ttl))
        end
      else
        local cur, last = read_rate(KEYS[i], lim)
        write_rate(KEYS[i], math.max(0, cur + amount * UNIT), last, lim)
      end
    end
  end
  return 0
elseif op == 'renew' then
  for i = 1, n do
    if redis.call('ZADD', KEYS[i], 'XX', 'CH', amount, lease) == 1 then
      redis.call('PEXPIRE', KEYS[i], int(amount - now + UNIT))
    end
  end
  return 0
end
return redis.error_reply('unknown op ' .. tostring(op))
