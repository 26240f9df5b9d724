-- expect: type a: enum point "mode" needs values = { ... }
-- line: 7
nodetype "a" {
  description = "mode has no values",
  points = {
    speed = { kind = "number" },
    mode = { kind = "enum", default = "auto" },
  },
}
