-- expect: type a: enum point "mode" needs values = { ... }
-- line: 3
nodetype "a" { points = { mode = { kind = "enum", default = "auto" } } }
