-- expect: extends itself through
-- line: 3
nodetype "a" { extends = "b" }
nodetype "b" { extends = "a" }
