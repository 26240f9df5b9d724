-- chain: boost the cooler while the overheat alarm (rule threshold.lua) is active.
--
-- Rules chain on each other's `active` point: this one follows rule SOURCE and copies
-- its state to the cooler's `boost` point. At start it reads SOURCE's present state, so
-- a reload does not miss a change.

local SOURCE = "threshold"   -- id of the rule to follow (its file name without .lua)
local COOLER = "demo-cooler" -- node that gets the `boost` point

local function follow(on)
  set(COOLER, "boost", on)
  log("boost %s (%s is %s)", on and "on" or "off", SOURCE, on and "active" or "not active")
end

on({ node = SOURCE, point = "active" }, function(ev)
  follow(ev.value ~= 0 and not ev.deleted)
end)

-- at start (as a timer, once the rule is loaded): catch up with SOURCE as it is now
after(0, function()
  follow(get(SOURCE, "active") == 1)
end)
