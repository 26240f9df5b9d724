-- expect: type a has unknown attribute colour
-- line: 5
nodetype "a" {
  description = "a",
  colour = "red",
}
