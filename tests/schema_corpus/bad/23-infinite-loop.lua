-- expect: runs too long
-- line: 4
nodetype "a" {}
while true do end
