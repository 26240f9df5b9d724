-- expect: values[2] must be a name of 1-64 bytes of [A-Za-z0-9._:-]
-- line: 7
nodetype "a" {
  points = {
    m = {
      kind = "enum",
      values = { "on", "half way" },
    },
  },
}
