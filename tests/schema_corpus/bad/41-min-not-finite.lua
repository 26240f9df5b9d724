-- expect: type a: point "x" min must be a finite number
-- line: 7
nodetype "a" {
  points = {
    x = {
      kind = "number",
      min = 0/0,
    },
  },
}
