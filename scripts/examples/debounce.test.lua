-- Test of debounce.lua:
--   sprig rule test scripts/examples/debounce.lua --steps scripts/examples/debounce.test.lua
node { id = "demo-plant", type = "group" }
node { id = "demo-pump", type = "signalGenerator", parent = "demo-plant", points = { signalType = "square" } }

-- the pump reports its value every half second for `ms` milliseconds
local function hold(v, ms)
  for _ = 1, ms // 500 do
    report("demo-pump", "value", v)
    advance(500)
  end
end

-- stopped from the start: nothing to say yet
hold(0, 2000)
expect("demo-plant", "running", nil)

-- a short start (2 s of the 5 needed) does nothing, then or later
hold(1, 2000)
hold(0, 10000)
expect("demo-plant", "running", nil)

-- running for 5 s turns `running` on, not a moment before
-- (the samples that keep coming do not restart the count)
hold(1, 4500)
report("demo-pump", "value", 1)
advance(499)
expect("demo-plant", "running", nil)
advance(1)
expect("demo-plant", "running", true)
hold(1, 10000)
expect("demo-plant", "running", true)

-- a 2 s drop-out (of the 3 needed) is ignored
hold(0, 2000)
hold(1, 5000)
expect("demo-plant", "running", true)

-- stopped for 3 s turns it off
report("demo-pump", "value", 0)
advance(2999)
expect("demo-plant", "running", true)
advance(1)
expect("demo-plant", "running", false)

-- and a short restart leaves it off
hold(1, 4000)
hold(0, 5000)
expect("demo-plant", "running", false)

-- an edit of the script reloads the rule and loses the timer of a pending change
-- (documented in debounce.lua): the change happens at the next sample instead
local _, src = get("debounce", "script")
report("demo-pump", "value", 1)
advance(2000)
set("debounce", "script", src .. "\n-- edited\n")
advance(4000)                  -- 6 s on, but no timer left to switch
expect("demo-plant", "running", false)
report("demo-pump", "value", 1) -- the next sample switches at once
expect("demo-plant", "running", true)
-- a change that has waited part of its time waits only for the rest after a reload
report("demo-pump", "value", 0)
advance(1000)
set("debounce", "script", src .. "\n-- edited again\n")
report("demo-pump", "value", 0)
advance(1999)
expect("demo-plant", "running", true)
advance(1)
expect("demo-plant", "running", false)

expect_error("")
