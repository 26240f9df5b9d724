-- rate: alarm on a fast temperature rise.
--
-- Samples the temperature once a second and works out how fast it changes (degC per
-- second, averaged over the last WINDOW_S seconds). Writes that to the plant's
-- `tempRate` point, and is active while the temperature rises faster than LIMIT.
-- A steady or falling temperature is never active. Sampling on a timer (rather than on
-- each change of the sensor) keeps the rate right when the value stops changing.

local SENSOR = "demo-temp"  -- node whose value is watched
local PLANT = "demo-plant"  -- node that gets the `tempRate` point
local SAMPLE_MS = 1000      -- how often the temperature is sampled
local WINDOW_S = 10         -- seconds the rate is averaged over
local LIMIT = 0.5           -- degC/s: active above this rise

every(SAMPLE_MS, function()
  local v = get(SENSOR, "value")
  if v == nil then return end -- no temperature (yet)
  local r = rate("temp", v, WINDOW_S)
  if r == nil then return end -- one sample so far: no rate yet
  set(PLANT, "tempRate", math.floor(r * 1000 + 0.5) / 1000) -- 3 decimals
  active(r > LIMIT)
end)
