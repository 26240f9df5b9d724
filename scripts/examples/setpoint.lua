-- setpoint: drive the cooler's fan speed from the tank level.
--
-- Maps the level (LEVEL_LOW..LEVEL_HIGH %) onto a fan speed (SPEED_LOW..SPEED_HIGH %)
-- in a straight line, clamped at both ends, and writes it, in whole percent, to the
-- cooler's `valueSet` point. Rounding means a level that barely moves writes nothing.

local SOURCE = "demo-level"  -- node whose value is read
local TARGET = "demo-cooler" -- node whose setpoint is written
local POINT = "valueSet"     -- the setpoint's point type
local LEVEL_LOW, LEVEL_HIGH = 20, 80 -- level (%) at which the speed is lowest / highest
local SPEED_LOW, SPEED_HIGH = 0, 100 -- fan speed (%) at those levels

on({ node = SOURCE, point = "value" }, function(ev)
  if ev.deleted then return end
  local x = (ev.value - LEVEL_LOW) / (LEVEL_HIGH - LEVEL_LOW) -- 0..1 inside the range
  x = math.max(0, math.min(1, x))                              -- clamped outside it
  local speed = SPEED_LOW + x * (SPEED_HIGH - SPEED_LOW)
  set(TARGET, POINT, math.floor(speed + 0.5))                  -- whole percent
end)
