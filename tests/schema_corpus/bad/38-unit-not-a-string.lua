-- expect: type a: point "x" unit must be a string
-- line: 7
nodetype "a" {
  points = {
    x = {
      kind = "number",
      unit = 5,
    },
  },
}
