-- debounce: minimum on and off times for the pump's running indication.
--
-- The plant's `running` point follows the pump only once the pump has been on for ON_S
-- seconds (or off for OFF_S seconds). A pump that starts and trips again within ON_S
-- never shows as running; a short drop-out while running is ignored.
-- Note: a change still waiting for its time when the rule is reloaded happens at the
-- pump's next sample instead.

local PUMP = "demo-pump"   -- node whose value is 1 when the pump runs, 0 when stopped
local PLANT = "demo-plant" -- node that gets the `running` point
local ON_S = 5             -- seconds the pump must run before `running` turns 1
local OFF_S = 3            -- seconds it must be stopped before `running` turns 0

on({ node = PUMP, point = "value" }, function(ev)
  local on = ev.value >= 0.5 and not ev.deleted
  debounce("pump", on, ON_S * 1000, OFF_S * 1000, function(running)
    set(PLANT, "running", running)
    log("%s %s", PUMP, running and "running" or "stopped")
  end)
end)
