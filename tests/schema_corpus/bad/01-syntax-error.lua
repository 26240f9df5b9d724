-- expect: unexpected symbol near '='
-- line: 4
nodetype "a" {
  points = { x = = 1 },
}
