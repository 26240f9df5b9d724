-- expect: type a: point "x" has unknown attribute "maximum"
-- line: 7
nodetype "a" {
  points = {
    x = {
      kind = "number",
      maximum = 5,
    },
  },
}
