-- Core node types: the root of every instance and the groups that organise a tree.
-- Both are open: people may tag them with points of their own.

nodetype "device" {
  description = "The root node of an instance (on an upstream, the root of a device's tree)",
  open = true,
  points = {
    description = { kind = "text", description = "What this device is, for people" },
    disabled    = { kind = "bool", description = "Set to stop every driver and rule of this device" },
    histCursor  = { kind = "integer", min = 0, ["local"] = true,
                    description = "On an upstream: the last history row of this device stored here" },
    syncDevice  = { kind = "text", ["local"] = true,
                    description = "On an upstream: the device id (topics, client id) this device's tree syncs under; set it to move the tree to a new deviceId" },
  },
}

nodetype "group" {
  description = "A folder of nodes: a plant, a room, a machine",
  open = true,
  points = {
    description = { kind = "text", description = "What this group holds, for people" },
    disabled    = { kind = "bool", description = "Set to stop every driver and rule below" },
  },
}
