-- expect: type pumpIo: parent type pumpStation is not declared
-- line: 3
nodetype "pumpIo" { extends = "modbusIo", parents = { "pumpStation" } }
