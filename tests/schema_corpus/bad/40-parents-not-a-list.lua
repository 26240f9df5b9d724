-- expect: parents must be a list of names
-- line: 5
nodetype "a" {
  description = "a",
  parents = "device",
}
