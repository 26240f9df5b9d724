-- expect: type a is declared twice (first at
-- line: 4
nodetype "a" { points = { x = { kind = "number" } } }
nodetype "a" { points = { y = { kind = "number" } } }
