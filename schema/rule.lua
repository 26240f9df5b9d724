-- Rules (DESIGN.md section 7): a rule node holds Lua source; the rule engine runs it on
-- the instance that owns it. Its code and switch are owner = "people": a rule may not
-- change any rule's script, file or disabled. A notification is what a rule's notify(text) writes.

nodetype "rule" {
  description = "A Lua rule: reacts to point changes and timers, writes points",
  parents = { "device", "group" },
  points = {
    description = { kind = "text", description = "What the rule does, for people" },
    disabled    = { kind = "bool", default = false, owner = "people",
                    description = "Set to stop the rule" },
    script      = { kind = "text", required = true, owner = "people",
                    description = "Lua source of the rule" },
    file        = { kind = "text", owner = "people",
                    description = "The file of the rules folder it was imported from" },
    active      = { kind = "bool", owner = "driver",
                    description = "Set by the rule itself; other rules may chain on it" },
    error       = { kind = "text", owner = "driver",
                    description = "Why the last load or run failed (line and message), empty when fine" },
    runs        = { kind = "integer", min = 0, owner = "driver", ["local"] = true,
                    description = "Times a handler of the rule has run (saved once a second)" },
    lastRun     = { kind = "number", unit = "ns", owner = "driver", ["local"] = true,
                    description = "When a handler last ran, nanoseconds since the Unix epoch" },
    state       = { kind = "text", owner = "driver", ["local"] = true,
                    description = "The rule's state table, serialized (saved once a second)" },
  },
}

nodetype "notification" {
  description = "A message for people, raised by a rule",
  points = {
    description  = { kind = "text", description = "Notes about it, for people" },
    message      = { kind = "text", required = true, description = "The text of the notification" },
    subject      = { kind = "text", description = "A short title" },
    severity     = { kind = "enum", values = { "info", "warning", "alarm" }, default = "info",
                     description = "How urgent it is" },
    source       = { kind = "text", description = "Id of the rule or node that raised it" },
    acknowledged = { kind = "bool", default = false, description = "Set once a person has seen to it" },
  },
}
