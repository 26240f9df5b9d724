-- expect: type tank: point "level" min 10 is above max 5
-- line: 7
-- The spec is not written in the call: the error names the nodetype line.
local spec = {
  points = { level = { kind = "number", min = 10, max = 5 } },
}
nodetype "tank" (spec)
