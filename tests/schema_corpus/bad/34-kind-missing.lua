-- expect: type a: point "x" kind (missing) is not number, integer, bool, text or enum
-- line: 5
nodetype "a" {
  points = {
    x = { min = 0 },
  },
}
