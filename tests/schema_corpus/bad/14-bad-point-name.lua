-- expect: type a: point name flow/min is not 1-64 bytes of [A-Za-z0-9._:-]
-- line: 5
nodetype "a" {
  points = {
    ["flow/min"] = { kind = "number" },
  },
}
