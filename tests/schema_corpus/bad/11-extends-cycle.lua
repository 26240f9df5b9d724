-- expect: type a extends itself through b
-- line: 4
nodetype "a" {
  extends = "b",
}
nodetype "b" {
  extends = "a",
}
