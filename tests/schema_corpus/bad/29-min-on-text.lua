-- expect: type a: point "label" has min, but a text point has no range
-- line: 7
nodetype "a" {
  points = {
    label = {
      kind = "text",
      min = 1,
    },
  },
}
