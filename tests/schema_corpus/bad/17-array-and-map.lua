-- expect: type a: point "x" cannot be both array and map
-- line: 3
nodetype "a" { points = { x = { kind = "number", array = true, map = true } } }
