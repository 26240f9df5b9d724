-- expect: type b: point "x" default must be a string for a text point
-- line: 9
nodetype "a" { points = { x = { kind = "number" } } }

nodetype "b" {
  points = {
    x = {
      kind = "text",
      default = 5,
    },
  },
}
