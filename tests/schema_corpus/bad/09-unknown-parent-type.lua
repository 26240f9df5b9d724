-- expect: type a: parent type nosuchType is not declared
-- line: 7
nodetype "b" { parents = { "device" } }

nodetype "a" {
  description = "a",
  parents = { "device", "nosuchType" },
}
