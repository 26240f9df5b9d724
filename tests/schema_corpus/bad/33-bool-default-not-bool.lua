-- expect: type a: point "on" default must be true or false
-- line: 7
nodetype "a" {
  points = {
    on = {
      kind = "bool",
      default = "yes",
    },
  },
}
