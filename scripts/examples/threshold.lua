-- threshold: overheat alarm on the tank temperature, with hysteresis.
--
-- The rule turns active when the temperature reaches HIGH and stays active until it has
-- fallen back to LOW. Between the two it keeps its last answer, so a temperature that
-- hovers around one limit does not make the alarm flicker on and off.
-- Other rules can follow the alarm: on{node="threshold", point="active"} (see chain.lua).

local SENSOR = "demo-temp" -- the node whose value is watched
local HIGH = 25            -- degC: alarm on at or above this
local LOW = 24             -- degC: alarm off again at or below this

on({ node = SENSOR, point = "value" }, function(ev)
  local hot = hysteresis("overheat", ev.value, HIGH, LOW)
  active(hot) -- writes only when it changes
  if changed("overheat", hot) then
    log("%s: %.1f degC, overheat %s", SENSOR, ev.value, hot and "ON" or "off")
  end
end)
