-- expect: type a: point "x" must be a table { kind = ... }
-- line: 6
nodetype "a" {
  points = {
    y = { kind = "number" },
    x = "number",
  },
}
