-- expect: type tank: point "level" owner must be "driver", "people" or "any"
-- line: 12
local function label(s, n) return s .. " " .. n end
nodetype "tank" {
  description = label("a tank", 1),
  points = {
    volume = { kind = "number",
               description = (function() local a, b = "x", "y"; if a then b = a end return a .. b end)() },
    temp = { kind = "number", min = -({ 1, 2 })[2] * 10, max = 1 == 1 and 90 or 80 },
    level = {
      kind = "number",
      owner = "robot",
    },
  },
}
