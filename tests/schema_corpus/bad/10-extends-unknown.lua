-- expect: type a extends unknown type nosuchType
-- line: 5
nodetype "a" {
  description = "a",
  extends = "nosuchType",
}
