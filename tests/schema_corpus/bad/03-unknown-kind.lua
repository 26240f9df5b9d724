-- expect: type a: point "x" kind "float" is not number, integer, bool, text or enum
-- line: 3
nodetype "a" {
  points = {
    x = { kind = "float" },
  },
}
