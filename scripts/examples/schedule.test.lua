-- Test of schedule.lua:
--   sprig rule test scripts/examples/schedule.lua --steps scripts/examples/schedule.test.lua
-- The clock starts on Monday 2026-01-05 at 00:00 UTC (local time in a test is UTC).
node { id = "demo-plant", type = "group" }
node { id = "demo-cooler", type = "group", parent = "demo-plant" }

-- at start (Monday night): off
advance(1000)
expect("demo-cooler", "enabled", false)

-- Monday morning: off until 08:00, on from 08:00
clock("2026-01-05T07:59:00Z")
expect("demo-cooler", "enabled", false)
clock("2026-01-05T08:00:00Z")
expect("demo-cooler", "enabled", true)

-- the middle of the week, during the day: on
clock("2026-01-07T12:00:00Z")
expect("demo-cooler", "enabled", true)
-- and at night: off
clock("2026-01-07T23:00:00Z")
expect("demo-cooler", "enabled", false)

-- Friday: on at 16:59, off at 17:00
clock("2026-01-09T16:59:00Z")
expect("demo-cooler", "enabled", true)
clock("2026-01-09T17:00:00Z")
expect("demo-cooler", "enabled", false)

-- the weekend: off all day
clock("2026-01-10T10:00:00Z")
expect("demo-cooler", "enabled", false)
clock("2026-01-11T12:00:00Z")
expect("demo-cooler", "enabled", false)

-- Monday again: on at 08:00
clock("2026-01-12T07:59:00Z")
expect("demo-cooler", "enabled", false)
clock("2026-01-12T08:00:00Z")
expect("demo-cooler", "enabled", true)

expect_error("")
