-- expect: type a: point "x" has values, but only an enum point has
-- line: 7
nodetype "a" {
  points = {
    x = {
      kind = "number",
      values = { "a", "b" },
    },
  },
}
