-- Several types in one file, plain Lua helpers, every kind and attribute; a required
-- point may have a default (it is then filled in at creation).
local function pct(desc)
  return { kind = "number", min = 0, max = 100, unit = "%", description = desc }
end

nodetype "tank" {
  description = "A water tank",
  parents = { "group", "device" },
  points = {
    description = { kind = "text" },
    disabled    = { kind = "bool", default = false },
    level       = pct("Fill level"),
    capacity    = { kind = "number", min = 0, unit = "l", required = true, default = 1000 },
    inlets      = { kind = "integer", min = 0, max = 8, default = 1 },
    material    = { kind = "enum", values = { "steel", "plastic", "concrete" }, default = "steel" },
    alarms      = { kind = "bool", map = { "high", "low" } },
    probes      = { kind = "number", array = true, unit = "degC" },
    labels      = { kind = "text", map = true },
    serialNo    = { kind = "text", required = true },
    cache       = { kind = "number", ["local"] = true, owner = "any" },
    level2      = { kind = "number", owner = "driver", array = false, map = false },
  },
}

nodetype "tankSensor" {
  parents = { "tank" },
  open = true,
}

for i = 1, 3 do
  nodetype("zone" .. i) { parents = { "group" }, extends = "group" }
end
