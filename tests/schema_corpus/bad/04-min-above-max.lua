-- expect: type tank: point "level" min 10 is above max 5
-- line: 5
nodetype "tank" {
  points = {
    level = { kind = "number", min = 10, max = 5 },
  },
}
