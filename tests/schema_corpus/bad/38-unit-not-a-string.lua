-- expect: type a: point "x" unit must be a string
-- line: 3
nodetype "a" { points = { x = { kind = "number", unit = 5 } } }
