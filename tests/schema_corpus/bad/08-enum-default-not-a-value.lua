-- expect: type a: point "mode" default "off" is not one of its values
-- line: 11
nodetype "a" {
  points = {
    mode = {
      kind = "enum",
      values = {
        "auto",
        "manual",
      },
      default = "off",
    },
  },
}
