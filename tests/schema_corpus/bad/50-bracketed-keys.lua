-- expect: type tank: point "level" default must be a number
-- line: 8
nodetype "tank" {
  ["points"] = {
    ["volume"] = { kind = "number" },
    ['level'] = {
      ["kind"] = "number",
      ["default"] = "full",
    },
  },
}
