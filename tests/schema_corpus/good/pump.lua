-- A user type that extends a shipped one: a Modbus IO that knows its pump's top speed.
nodetype "pumpIo" {
  extends = "modbusIo",
  description = "Speed of a pump, read over Modbus",
  points = {
    rpmMax = { kind = "number", min = 0, unit = "rpm", description = "Top speed of the pump" },
    scale  = { kind = "number", default = 0.1, description = "Raw tenths of an rpm" },
  },
}
