-- notify: raise an alarm notification when the tank level goes too high.
--
-- One notification per excursion: when the level reaches HIGH it notifies once; it
-- notifies again only after the level has come back down to REARM and risen to HIGH
-- again (hysteresis), not on every sample above HIGH. The rule is also active while the
-- level is high, for other rules to chain on.

local SENSOR = "demo-level" -- node whose value is watched
local HIGH = 85             -- % : notify when the level reaches this
local REARM = 80            -- % : ready to notify again once the level is back down here

on({ node = SENSOR, point = "value" }, function(ev)
  local high = hysteresis("level-high", ev.value, HIGH, REARM)
  active(high)
  -- changed() must see every answer, so call it first; notify only on the way up
  if changed("level-high", high) and high then
    notify(string.format("Tank level high: %.1f %% (limit %d %%)", ev.value, HIGH),
      { severity = "alarm", subject = "Tank level" })
  end
end)
