-- expect: type pumpIo: parent type pumpStation is not declared
-- line: 5
nodetype "pumpIo" {
  extends = "modbusIo",
  parents = { "pumpStation" },
}
