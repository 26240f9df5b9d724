-- expect: type modbusIo is declared twice (first at
-- line: 3
nodetype "modbusIo" { points = { x = { kind = "number" } } }
