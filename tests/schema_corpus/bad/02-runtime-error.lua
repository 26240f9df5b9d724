-- expect: attempt to perform arithmetic on a nil value (global 'undefinedLimit')
-- line: 3
local max = undefinedLimit + 1
nodetype "a" { points = { x = { kind = "number", max = max } } }
