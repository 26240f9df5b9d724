-- expect: type a: parent type nosuchType is not declared
-- line: 5
nodetype "b" { parents = { "device" } }

nodetype "a" { parents = { "device", "nosuchType" } }
