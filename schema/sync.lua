-- sync (DESIGN.md section 5): a link to an upstream over MQTT. Its status points describe
-- this instance's side of the link only, so they are local: stored and published here,
-- never hashed or synced. Its connection points are owner = "people": no rule changes
-- where a gateway's data goes.

nodetype "sync" {
  description = "A link to an upstream instance through an MQTT broker",
  parents = { "device", "group" },
  points = {
    description  = { kind = "text", description = "Which upstream this is, for people" },
    disabled     = { kind = "bool", owner = "people", default = false, description = "Set to disconnect" },
    uri          = { kind = "text", owner = "people", required = true,
                     description = "Broker address: mqtt://host:1883 or mqtts://host:8883, or a " ..
                                   "comma-separated list of them (a cluster's nodes, a standby): " ..
                                   "the link uses the first and moves to the next when the one " ..
                                   "it uses is gone; the TLS files and credentials apply to all" },
    caFile       = { kind = "text", owner = "people", description = "CA certificate file that signs the broker's (mqtts)" },
    certFile     = { kind = "text", owner = "people", description = "Client certificate file (mqtts)" },
    keyFile      = { kind = "text", owner = "people", description = "Client key file (mqtts)" },
    username     = { kind = "text", owner = "people", description = "User name at the broker" },
    passwordFile = { kind = "text", owner = "people", description = "File holding the password at the broker" },
    deviceId     = { kind = "text", owner = "people", description = "Id in this device's topics and MQTT client id upstream (default: its root id); its tree keeps the root id there" },
    period       = { kind = "number", owner = "people", min = 0.1, max = 86400, unit = "s", default = 20,
                     description = "Time between two hash probes" },
    maxMessage   = { kind = "integer", owner = "people", min = 1024, max = 268435456, unit = "B", default = 4194304,
                     description = "Largest message taken from the upstream (larger ones are refused and counted)" },
    state        = { kind = "enum", values = { "connecting", "syncing", "insync", "error" },
                     owner = "driver", ["local"] = true, description = "Where the link stands" },
    error        = { kind = "text", owner = "driver", ["local"] = true,
                     description = "Why the link failed (refused certificate, bad password...), empty when fine" },
    broker       = { kind = "text", owner = "driver", ["local"] = true,
                     description = "The broker of the uri list in use, or being tried" },
    protocol     = { kind = "text", owner = "driver", ["local"] = true,
                     description = "The MQTT version of the connection in use: 5, or 3.1.1 with a " ..
                                   "broker that refuses 5; empty while not connected" },
    lastSync     = { kind = "number", unit = "ns", owner = "driver", ["local"] = true,
                     description = "When a probe last found both sides equal, nanoseconds since the Unix epoch" },
    syncCount    = { kind = "integer", min = 0, owner = "driver", ["local"] = true,
                     description = "Probes that found both sides equal" },
    repairCount  = { kind = "integer", min = 0, owner = "driver", ["local"] = true,
                     description = "Repairs started after a probe found a difference" },
    bytesUp      = { kind = "integer", min = 0, unit = "B", owner = "driver", ["local"] = true,
                     description = "Bytes published to the upstream" },
    bytesDown    = { kind = "integer", min = 0, unit = "B", owner = "driver", ["local"] = true,
                     description = "Bytes received from the upstream" },
    bytesByKind  = { kind = "text", owner = "driver", ["local"] = true,
                     description = "bytesUp and bytesDown by message kind, as JSON: " ..
                                   "{\"up\":{\"pts\":N,\"node\":N,...},\"down\":{...}}" },
    histPending  = { kind = "integer", min = 0, owner = "driver", ["local"] = true,
                     description = "History samples not yet acknowledged by the upstream" },
    histAcked    = { kind = "integer", min = 0, owner = "driver", ["local"] = true,
                     description = "The last history row the upstream acknowledged (the upload's cursor)" },
  },
}
