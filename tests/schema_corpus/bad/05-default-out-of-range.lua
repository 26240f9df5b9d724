-- expect: type a: point "x" default 200 is outside its range
-- line: 9
nodetype "a" {
  points = {
    x = {
      kind = "integer",
      min = 0,
      max = 100,
      default = 200,
    },
  },
}
