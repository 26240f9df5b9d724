-- serial (drivers/serial): an MCU link (COBS frames with CRC and acks) or a device that
-- prints lines, parsed by a Lua function. Points the MCU or the parser names land on the
-- node itself, so the type is open. The parser is code: owner = "people", no rule changes it.

nodetype "serial" {
  description = "A serial port: a microcontroller link, or a device that prints lines",
  parents = { "device", "group" },
  open = true,
  points = {
    description   = { kind = "text", description = "What is on this port, for people" },
    disabled      = { kind = "bool", default = false, description = "Set to close the port" },
    port          = { kind = "text", required = true, description = "Serial device, e.g. /dev/ttyACM0" },
    baud          = { kind = "integer", min = 50, max = 4000000, default = 115200, unit = "bit/s",
                      description = "Baud rate" },
    parity        = { kind = "enum", values = { "none", "even", "odd" }, default = "none",
                      description = "Parity" },
    dataBits      = { kind = "integer", min = 5, max = 8, default = 8, description = "Data bits" },
    stopBits      = { kind = "integer", min = 1, max = 2, default = 1, description = "Stop bits" },
    mode          = { kind = "enum", values = { "mcu", "line" }, default = "mcu",
                      description = "mcu: COBS frames with acks; line: each line goes to parser" },
    parser        = { kind = "text", owner = "people",
                      description = "Lua source of the line parser: a function of a line returning points (line mode)" },
    timeout       = { kind = "integer", min = 1, max = 60000, default = 1000, unit = "ms",
                      description = "Time to wait for an ack before a resend (mcu mode)" },
    debug         = { kind = "integer", min = 0, max = 9, default = 0,
                      description = "Log level of this port: 0 quiet, 9 every frame" },
    connected     = { kind = "bool", owner = "driver", description = "The port is open and the peer answers" },
    error         = { kind = "text", owner = "driver", description = "The last parser error, empty when fine" },
    rx            = { kind = "integer", min = 0, owner = "driver", description = "Frames or lines received" },
    tx            = { kind = "integer", min = 0, owner = "driver", description = "Frames sent" },
    crcErrors     = { kind = "integer", min = 0, owner = "driver", description = "Frames with a bad CRC" },
    framingErrors = { kind = "integer", min = 0, owner = "driver",
                      description = "Frames truncated, oversized or badly encoded" },
    parseErrors   = { kind = "integer", min = 0, owner = "driver",
                      description = "Lines the parser refused or failed on" },
    retries       = { kind = "integer", min = 0, owner = "driver", description = "Frames sent again for want of an ack" },
  },
}
