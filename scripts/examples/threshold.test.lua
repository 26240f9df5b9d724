-- Test of threshold.lua:
--   sprig rule test scripts/examples/threshold.lua --steps scripts/examples/threshold.test.lua
node { id = "demo-plant", type = "group" }
node { id = "demo-temp", type = "signalGenerator", parent = "demo-plant", points = { signalType = "sine" } }

-- one sample of the sensor, half a second after the last (the demo samples at 2 Hz)
local function sample(v)
  advance(500)
  report("demo-temp", "value", v)
end

-- cool: no alarm
sample(20)
expect("threshold", "active", false)

-- into the band (24..25) from below: still no alarm
sample(24.5)
expect("threshold", "active", false)
sample(24.99)
expect("threshold", "active", false)

-- reaching HIGH turns it on
sample(25)
expect("threshold", "active", true)

-- back into the band from above: it stays on, and nothing is written again
local w = writes()
sample(24.5)
sample(24.01)
sample(25.5)
sample(24.2)
expect("threshold", "active", true)
assert(writes() == w, "threshold wrote while the temperature stayed in the band")

-- down to LOW turns it off
sample(24)
expect("threshold", "active", false)

-- and the band holds it off again until HIGH
sample(24.9)
expect("threshold", "active", false)
sample(26)
expect("threshold", "active", true)

-- an edit of the script reloads the rule; where the alarm stands (kept in state)
-- survives it: back in the band, it stays on
local _, src = get("threshold", "script")
set("threshold", "script", src .. "\n-- edited\n")
sample(24.5)
expect("threshold", "active", true)
sample(23)
expect("threshold", "active", false)

expect_error("")
