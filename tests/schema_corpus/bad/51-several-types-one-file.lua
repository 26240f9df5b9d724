-- expect: type c: point "level" unit must be a string
-- line: 12
nodetype "a" { points = { level = { kind = "number", unit = "m" } } }
nodetype "b" {
  points = {
    level = { kind = "number", unit = "cm" },
  },
}
nodetype "c" {
  points = {
    level = { kind = "number", min = 0,
              unit = 5 },
  },
}
