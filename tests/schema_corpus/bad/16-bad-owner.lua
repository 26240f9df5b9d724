-- expect: type a: point "x" owner must be "driver", "people" or "any"
-- line: 7
nodetype "a" {
  points = {
    x = {
      kind = "number",
      owner = "rule",
    },
  },
}
