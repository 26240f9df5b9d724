-- expect: type a: point "x" kind "float" is not number, integer, bool, text or enum
-- line: 7
nodetype "a" {
  points = {
    x = {
      description = "the kind on a line of its own",
      kind = "float",
    },
  },
}
