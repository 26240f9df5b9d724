-- schedule: the cooler runs during working hours only.
--
-- Sets `enabled` on the cooler to 1 inside the weekly window HOURS (local time) and to 0
-- outside it. The window is checked once a minute and once at start; `set` writes only
-- when the value changes, so checking often costs nothing.

local COOLER = "demo-cooler" -- node that gets the `enabled` point
local HOURS = { from = "08:00", to = "17:00", days = { "mon", "tue", "wed", "thu", "fri" } }

local function apply()
  set(COOLER, "enabled", window(HOURS))
end

every(60000, apply) -- every minute
after(0, apply)     -- and at start (as a timer, once the rule is loaded)
