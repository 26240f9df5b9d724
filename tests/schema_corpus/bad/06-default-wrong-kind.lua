-- expect: type a: point "x" default must be a number
-- line: 6
nodetype "a" {
  points = {
    x = { kind = "number",
          default = "ten" },
  },
}
