-- expect: type a: point "x" owner must be "driver" or "any"
-- line: 3
nodetype "a" { points = { x = { kind = "number", owner = "rule" } } }
