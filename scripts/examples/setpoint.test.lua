-- Test of setpoint.lua:
--   sprig rule test scripts/examples/setpoint.lua --steps scripts/examples/setpoint.test.lua
node { id = "demo-plant", type = "group" }
node { id = "demo-level", type = "signalGenerator", parent = "demo-plant", points = { signalType = "triangle" } }
node { id = "demo-cooler", type = "group", parent = "demo-plant" }

local function level(v)
  advance(500)
  report("demo-level", "value", v)
end

-- inside the range: a straight line, 20 % -> 0, 50 % -> 50, 80 % -> 100
level(50)
expect("demo-cooler", "valueSet", 50)
level(35)
expect("demo-cooler", "valueSet", 25)
level(20)
expect("demo-cooler", "valueSet", 0)
level(80)
expect("demo-cooler", "valueSet", 100)

-- outside it: clamped
level(90)
expect("demo-cooler", "valueSet", 100)
level(10)
expect("demo-cooler", "valueSet", 0)
level(-5)
expect("demo-cooler", "valueSet", 0)

-- rounded to whole percent: 62.6 % -> 71, and a level that barely moves writes nothing
level(62.6)
expect("demo-cooler", "valueSet", 71)
local w = writes()
level(62.65)
level(62.55)
expect("demo-cooler", "valueSet", 71)
assert(writes() == w, "setpoint wrote the same speed again")

expect_error("")
