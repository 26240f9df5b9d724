-- Node types the tests use beside the shipped ones (loaded with `sprig run --schema
-- tests/schema_test`). A type no schema declares is refused, so a test that wants a node
-- of its own kind declares it here; each is open, so a test may give it any point.

nodetype "sensor" {
  description = "A measuring node of the tests, with whatever points a test gives it",
  open = true,
}

nodetype "pump" {
  description = "A pump of the tests (the type a typo such as \"pumpp\" is close to)",
  open = true,
  points = {
    speed = { kind = "number", min = 0, max = 3000, unit = "rpm" },
  },
}
