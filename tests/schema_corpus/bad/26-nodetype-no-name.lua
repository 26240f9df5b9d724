-- expect: nodetype needs a type name of 1-64 bytes of [A-Za-z0-9._:-], got table
-- line: 3
nodetype {
  points = { x = { kind = "number" } },
}
