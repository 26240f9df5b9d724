-- expect: type a: points must be a table of name = { kind = ... }
-- line: 3
nodetype "a" { points = "x, y" }
