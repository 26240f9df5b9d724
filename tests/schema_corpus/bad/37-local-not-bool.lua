-- expect: type a: point "x" local must be true or false
-- line: 7
nodetype "a" {
  points = {
    x = {
      kind = "number",
      ["local"] = "yes",
    },
  },
}
