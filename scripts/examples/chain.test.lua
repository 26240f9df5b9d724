-- Test of chain.lua:
--   sprig rule test scripts/examples/chain.lua --steps scripts/examples/chain.test.lua
-- Only one rule runs in a test, so a stand-in plays the threshold rule: a rule node
-- whose script does nothing, and whose `active` point the test writes as that node.
node { id = "demo-plant", type = "group" }
node { id = "demo-cooler", type = "group", parent = "demo-plant" }
node { id = "threshold", type = "rule", points = { script = "-- stand-in" } }

-- at start threshold is not active: boost off
advance(1000)
expect("demo-cooler", "boost", false)

-- threshold turns active: boost on
report("threshold", "active", true)
expect("demo-cooler", "boost", true)
advance(1000)
expect("demo-cooler", "boost", true)

-- threshold clears: boost off
report("threshold", "active", false)
expect("demo-cooler", "boost", false)

-- on again, then its active point is deleted: boost off
advance(1000)
report("threshold", "active", true)
expect("demo-cooler", "boost", true)
advance(1000)
report("threshold", "active", nil)
expect("demo-cooler", "boost", false)

expect_error("")
