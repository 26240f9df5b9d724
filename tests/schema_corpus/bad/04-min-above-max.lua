-- expect: type a: point "x" min 10 is above max 5
-- line: 4

nodetype "a" {
  points = { x = { kind = "number", min = 10, max = 5 } },
}
