-- Extends chains across files and a forward reference: c extends b (declared later in
-- this file), b extends tank (declared in plant.lua, loaded before it in name order).
nodetype "c" { extends = "b", points = { z = { kind = "integer" } } }
nodetype "b" { extends = "tank", points = { y = { kind = "number", max = 5 } } }
