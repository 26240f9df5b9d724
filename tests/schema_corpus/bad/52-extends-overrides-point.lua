-- expect: type bigTank: point "level" default 150 is outside its range
-- line: 12
nodetype "tank" {
  points = {
    level = { kind = "number", min = 0, max = 100, default = 50 },
  },
}
nodetype "bigTank" {
  extends = "tank",
  points = {
    level = { kind = "number", min = 0, max = 100,
              default = 150 },
  },
}
