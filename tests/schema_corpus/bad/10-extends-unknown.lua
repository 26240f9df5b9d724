-- expect: type a extends unknown type nosuchType
-- line: 3
nodetype "a" { extends = "nosuchType" }
