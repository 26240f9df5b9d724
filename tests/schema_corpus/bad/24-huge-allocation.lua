-- expect: not enough memory
-- line: 3
local s = string.rep("x", 1 << 30)
nodetype "a" { description = s }
