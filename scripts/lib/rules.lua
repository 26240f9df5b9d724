-- The rule library (scripts/README.md, "The rule library"): loaded into every rule
-- before its script, it defines hysteresis, debounce, window, rate and changed.
--
-- What these functions remember lives in the rule's `state`, under state._lib, so it
-- survives reloads and restarts: state._lib.<function>[name] = what that name remembers.
-- The API globals (state, now, after, cancel...) are used only inside the functions:
-- they exist when the functions run.

-- The table in which library function `fn` keeps what it remembers, by name:
-- state._lib[fn] (created when missing). Checks the name first.
local function memory(fn, name)
  if type(name) ~= "string" or name == "" then
    error(string.format("%s: name must be a non-empty string (got %s)", fn, tostring(name)), 3)
  end
  state._lib = state._lib or {}
  local all = state._lib
  all[fn] = all[fn] or {}
  return all[fn]
end

-- Raises "FN: ARG must be WHAT (got VALUE)" at the caller of the library function.
local function need(ok, fn, arg, what, value)
  if not ok then
    error(string.format("%s: %s must be %s (got %s)", fn, arg, what, tostring(value)), 3)
  end
end

local function is_number(v)
  return type(v) == "number" and v == v -- not NaN
end

-- hysteresis(name, v, high, low) -> boolean
-- True once v reaches high, false again once v falls to low; in between it keeps its
-- last answer (false at first). Use it so an alarm does not flicker around one limit.
function hysteresis(name, v, high, low)
  local mem = memory("hysteresis", name)
  need(is_number(v), "hysteresis", "v", "a number", v)
  need(is_number(high), "hysteresis", "high", "a number", high)
  need(is_number(low), "hysteresis", "low", "a number", low)
  if high <= low then
    error(string.format("hysteresis: high (%s) must be above low (%s)", high, low), 2)
  end
  local on = mem[name] or false
  if v >= high then
    on = true
  elseif v <= low then
    on = false
  end
  mem[name] = on
  return on
end

-- debounce(name, input, on_ms, off_ms, fn)
-- The output follows `input` (a boolean) only once input has held for on_ms (turning
-- true) or off_ms (turning false); fn(output) is called when the output changes. The
-- output starts false. Call it on every new input: a pulse shorter than the hold time
-- does nothing.
--
-- The output and a pending change are kept in state; the timer that makes the change and
-- fn are not (state holds no functions), they live in `pending` below. A reload of the
-- script loses that timer: the change then happens at the next call of debounce (at
-- once when the input has held long enough by then).
local pending = {} -- name -> {timer = handle, fn = function}

function debounce(name, input, on_ms, off_ms, fn)
  local mem = memory("debounce", name)
  need(type(input) == "boolean", "debounce", "input", "a boolean (e.g. ev.value == 1)", input)
  need(is_number(on_ms) and on_ms >= 0, "debounce", "on_ms", "a number >= 0", on_ms)
  need(is_number(off_ms) and off_ms >= 0, "debounce", "off_ms", "a number >= 0", off_ms)
  need(type(fn) == "function", "debounce", "fn", "a function", fn)

  local d = mem[name] or { out = false } -- out: the output; want, since: a pending change
  mem[name] = d
  local p = pending[name] or {}
  pending[name] = p
  p.fn = fn -- the latest fn is the one called

  local function switch()
    p.timer = nil
    d.out, d.want, d.since = d.want, nil, nil
    p.fn(d.out)
  end
  -- makes the change in ms milliseconds (at once when none are left)
  local function arm(ms)
    if ms <= 0 then
      switch()
    else
      p.timer = after(math.floor(ms + 0.5), function()
        -- the state table may have been replaced since: follow it
        d = memory("debounce", name)[name]
        if d and d.want ~= nil then switch() end
      end)
    end
  end

  if p.timer then
    if d.want == input then return end -- still holding: the timer runs on
    cancel(p.timer)
    p.timer = nil
  end
  if input == d.out then
    d.want, d.since = nil, nil -- back before the hold time ran out: nothing happens
  elseif d.want ~= input then
    d.want, d.since = input, now() -- a change starts: input must hold from now on
    arm(input and on_ms or off_ms)
  else
    -- a change that started before a reload lost its timer: wait what is left of it
    arm((input and on_ms or off_ms) - (now() - d.since) * 1000)
  end
end

-- window(spec [, t]) -> boolean
-- Whether t (default now()) falls inside a weekly window in local time:
--   {from = "08:00", to = "17:00", days = {"mon", "tue", "wed", "thu", "fri"}}
-- from is inside, to is not. days defaults to every day. A window whose `to` is before
-- its `from` runs past midnight: {from = "22:00", to = "06:00", days = {"fri"}} is
-- Friday 22:00 to Saturday 06:00. to = "24:00" is the end of the day.
local DAYS = { sun = 1, mon = 2, tue = 3, wed = 4, thu = 5, fri = 6, sat = 7 } -- os.date wday

-- "HH:MM" or "HH:MM:SS" -> seconds after midnight
local function time_of_day(text, arg)
  local h, m, s = tostring(text):match("^(%d%d?):(%d%d)$")
  if not h then
    h, m, s = tostring(text):match("^(%d%d?):(%d%d):(%d%d)$")
  end
  h, m, s = tonumber(h), tonumber(m), tonumber(s or 0)
  local secs = h and (h * 3600 + m * 60 + s)
  if type(text) ~= "string" or not h or m > 59 or s > 59 or secs > 24 * 3600
      or (h == 24 and arg == "from") then
    error(string.format("window: %s must be a time \"HH:MM\" (got %s)", arg, tostring(text)), 3)
  end
  return secs
end

function window(spec, t)
  need(type(spec) == "table", "window", "spec", "a table {from=, to=, days=}", spec)
  local from = time_of_day(spec.from, "from")
  local to = time_of_day(spec.to, "to")
  if from == to then
    error(string.format("window: from (%s) and to (%s) must differ", spec.from, spec.to), 2)
  end
  local days = {} -- wday -> true
  if spec.days == nil then
    for _, w in pairs(DAYS) do days[w] = true end
  else
    need(type(spec.days) == "table", "window", "days", "a list like {\"mon\", \"fri\"}", spec.days)
    for _, d in ipairs(spec.days) do
      local w = type(d) == "string" and DAYS[d:lower():sub(1, 3)]
      need(w, "window", "days", "names of days: mon tue wed thu fri sat sun", d)
      days[w] = true
    end
  end
  t = t or now()
  need(is_number(t), "window", "t", "a time in seconds (like now())", t)

  local d = os.date("*t", math.floor(t))
  local tod = d.hour * 3600 + d.min * 60 + d.sec
  local yesterday = (d.wday + 5) % 7 + 1
  if from < to then
    return days[d.wday] == true and tod >= from and tod < to
  end
  -- past midnight: the evening part belongs to today, the morning part to yesterday
  return (days[d.wday] == true and tod >= from) or (days[yesterday] == true and tod < to)
end

-- rate(name, v, window_s [, t]) -> change of v per second, or nil
-- Over the last window_s seconds: from the oldest sample kept to the newest (t defaults
-- to now()). nil until there are two samples. Samples closer together than 1/100 of the
-- window are thinned out, so a fast signal does not fill the state. If time goes
-- backwards (a clock set back), the samples start over.
function rate(name, v, window_s, t)
  local mem = memory("rate", name)
  need(is_number(v), "rate", "v", "a number", v)
  need(is_number(window_s) and window_s > 0, "rate", "window_s", "a number of seconds > 0", window_s)
  t = t or now()
  need(is_number(t), "rate", "t", "a time in seconds (like now())", t)

  local s = mem[name]
  if s == nil or t < s.t[#s.t] then
    s = { t = {}, v = {} } -- two lists: sample times and values
    mem[name] = s
  end
  local n = #s.t
  if n >= 1 and t == s.t[n] then
    s.v[n] = v -- same time: the newer value wins
  elseif n >= 2 and t - s.t[n - 1] < window_s / 100 then
    s.t[n], s.v[n] = t, v -- too close to the one before: replace the newest
  else
    s.t[n + 1], s.v[n + 1] = t, v
  end
  -- forget samples older than the window
  while #s.t > 1 and s.t[1] < t - window_s do
    table.remove(s.t, 1)
    table.remove(s.v, 1)
  end
  n = #s.t
  if n < 2 then return nil end
  return (s.v[n] - s.v[1]) / (s.t[n] - s.t[1])
end

-- changed(name, v) -> boolean
-- True when v (a number, string, boolean or nil) differs from the value changed saw last
-- under that name; true the first time.
function changed(name, v)
  local mem = memory("changed", name)
  local tv = type(v)
  need(tv == "number" or tv == "string" or tv == "boolean" or tv == "nil",
    "changed", "v", "a number, string, boolean or nil", v)
  local last = mem[name]
  mem[name] = { v = v } -- wrapped, so that nil is remembered too
  return last == nil or last.v ~= v
end
