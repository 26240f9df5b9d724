-- expect: nodetype needs a type name of 1-64 bytes
-- line: 3
nodetype "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" {}
