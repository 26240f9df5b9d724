-- expect: type a has unknown attribute colour
-- line: 3
nodetype "a" { colour = "red" }
