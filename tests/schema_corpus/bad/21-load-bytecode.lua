-- expect: attempt to call a nil value (field 'dump')
-- line: 3
local code = string.dump(function() return 1 end)
local f = load(code, "x", "b")
