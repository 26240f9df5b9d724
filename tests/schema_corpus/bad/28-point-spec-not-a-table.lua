-- expect: type a: point "x" must be a table { kind = ... }
-- line: 3
nodetype "a" { points = { x = "number" } }
