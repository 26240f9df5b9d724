-- expect: type a: point "x" cannot be both array and map
-- line: 6
nodetype "a" {
  points = {
    y = { kind = "number", array = true },
    x = { kind = "number", array = true, map = true },
  },
}
