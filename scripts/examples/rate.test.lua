-- Test of rate.lua:
--   sprig rule test scripts/examples/rate.lua --steps scripts/examples/rate.test.lua
node { id = "demo-plant", type = "group" }
node { id = "demo-temp", type = "signalGenerator", parent = "demo-plant", points = { signalType = "sine" } }

-- the sensor reports v, and a second passes (the rule samples once a second)
local function temp(v)
  report("demo-temp", "value", v)
  advance(1000)
end

-- the first sample gives no rate yet
temp(20)
expect("demo-plant", "tempRate", nil)

-- steady for 10 s: rate 0, not active
for _ = 1, 10 do temp(20) end
expect("demo-plant", "tempRate", 0)
expect("rate", "active", false)

-- a slow rise, 0.2 degC/s for 10 s: not active
for k = 1, 10 do temp(20 + 0.2 * k) end
expect("demo-plant", "tempRate", 0.2)
expect("rate", "active", false)

-- then a fast rise, 1 degC/s: the 10 s average passes 0.5 degC/s after 4 s
temp(23) -- (23 - 20.2) / 10 s = 0.28
temp(24) -- 0.36
temp(25) -- 0.44
expect("demo-plant", "tempRate", 0.44)
expect("rate", "active", false)
temp(26) -- 0.52
expect("demo-plant", "tempRate", 0.52)
expect("rate", "active", true)
for k = 5, 10 do temp(22 + k) end
expect("demo-plant", "tempRate", 1)
expect("rate", "active", true)

-- steady again: the average falls, and once it is below the limit the rule clears
for _ = 1, 5 do temp(32) end   -- (32 - 27) / 10 = 0.5: not above the limit
expect("demo-plant", "tempRate", 0.5)
expect("rate", "active", false)
for _ = 1, 5 do temp(32) end
expect("demo-plant", "tempRate", 0)
expect("rate", "active", false)

-- a fast fall is a negative rate, never active
for k = 1, 5 do temp(32 - 2 * k) end
expect("demo-plant", "tempRate", -1)
expect("rate", "active", false)

expect_error("")
