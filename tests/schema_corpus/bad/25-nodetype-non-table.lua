-- expect: nodetype "a" needs a table: nodetype "a" { ... }
-- line: 3
nodetype "a" "points"
