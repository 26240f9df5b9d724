-- expect: type a: point "x" map must be true or a list of keys
-- line: 7
nodetype "a" {
  points = {
    x = {
      kind = "number",
      map = "low,high",
    },
  },
}
