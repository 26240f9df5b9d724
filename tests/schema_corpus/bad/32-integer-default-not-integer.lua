-- expect: type a: point "n" default 2.5 is not an integer
-- line: 7
nodetype "a" {
  points = {
    n = {
      kind = "integer",
      default = 2.5,
    },
  },
}
