-- expect: parents must be a list of names
-- line: 3
nodetype "a" { parents = "device" }
