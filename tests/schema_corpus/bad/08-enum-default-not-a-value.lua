-- expect: type a: point "mode" default "off" is not one of its values
-- line: 3
nodetype "a" {
  points = { mode = { kind = "enum", values = { "auto", "manual" }, default = "off" } },
}
