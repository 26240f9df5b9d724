-- expect: type tank: point "level" min 10 is above max 5
-- line: 11
-- level = { kind = "number" } in a comment does not count
--[[ level = { min = 1 },
     level = { max = 0 } ]]
nodetype "tank" {
  description = "level = { kind = 'number' }, points = { level = {} }",
  points = {
    volume = { kind = "number", description = [[ level = {
      min = 1 } ]] },
    level = { kind = "number", min = 10, max = 5 },
  },
}
