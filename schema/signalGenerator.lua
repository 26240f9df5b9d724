-- signalGenerator: a simulated sensor (drivers/signalGenerator/signalGenerator.c), so a demo
-- needs no hardware.

nodetype "signalGenerator" {
  description = "A simulated sensor: sine, square, triangle or random walk",
  parents = { "device", "group" },
  points = {
    description = { kind = "text", description = "What the signal stands for, for people" },
    disabled    = { kind = "bool", default = false, description = "Set to stop the generator" },
    signalType  = { kind = "enum", values = { "sine", "square", "triangle", "random" },
                    default = "sine", description = "Shape of the signal" },
    amplitude   = { kind = "number", default = 1,
                    description = "Half the peak-to-peak swing (the step size of a random walk)" },
    offset      = { kind = "number", default = 0, description = "Value the signal swings around" },
    period      = { kind = "number", min = 0.001, unit = "s", default = 10,
                    description = "Length of one cycle" },
    sampleRate  = { kind = "number", min = 0.001, max = 1000, unit = "Hz", default = 1,
                    description = "Samples written per second" },
    value       = { kind = "number", owner = "driver", description = "The latest sample" },
  },
}
