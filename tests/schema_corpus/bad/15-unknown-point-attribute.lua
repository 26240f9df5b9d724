-- expect: type a: point "x" has unknown attribute "maximum"
-- line: 3
nodetype "a" { points = { x = { kind = "number", maximum = 5 } } }
