-- expect: type a: points must be a table of name = { kind = ... }
-- line: 5
nodetype "a" {
  description = "points is a string",
  points = "x, y",
}
