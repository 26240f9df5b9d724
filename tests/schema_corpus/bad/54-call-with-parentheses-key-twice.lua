-- expect: type tank: point "level" kind "numbr" is not number, integer, bool, text or enum
-- line: 6
nodetype("tank")({
  points = {
    level = { kind = "number" },
    level = { kind = "numbr" },
  },
})
