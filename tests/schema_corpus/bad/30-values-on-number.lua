-- expect: type a: point "x" has values, but only an enum point has
-- line: 3
nodetype "a" { points = { x = { kind = "number", values = { "a", "b" } } } }
