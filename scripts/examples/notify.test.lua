-- Test of notify.lua:
--   sprig rule test scripts/examples/notify.lua --steps scripts/examples/notify.test.lua
node { id = "demo-plant", type = "group" }
node { id = "demo-level", type = "signalGenerator", parent = "demo-plant", points = { signalType = "triangle" } }

local function level(v)
  advance(500)
  report("demo-level", "value", v)
end

-- below the limit: nothing
level(50)
level(84.9)
expect("notify", "active", false)

-- first excursion: one notification when the level reaches 85 %
level(86.2)
expect_notified("Tank level high: 86.2 %")
expect("notify", "active", true)

-- staying high for a minute (120 samples, going up, down and dipping between 80 and 85)
-- raises no more notifications (more than 10 a minute would also set the rule's error)
local w = writes()
for i = 1, 120 do
  level(83 + (i % 10)) -- 83..92
end
level(81)
level(88)
assert(writes() == w, "notify wrote during the excursion")
expect("notify", "active", true)
expect_error("")

-- back down to 80 % re-arms it, without a notification
level(80)
expect("notify", "active", false)
assert(writes() == w + 1, "notify should only have cleared its active point")

-- second excursion: one more notification
level(85)
expect_notified("Tank level high: 85.0 %")
expect("notify", "active", true)

expect_error("")
