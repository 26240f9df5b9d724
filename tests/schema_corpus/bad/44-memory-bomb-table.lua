-- expect: not enough memory
-- line: 6
-- (Lua raises an allocation failure with no position; the loader names the line running.)
local t = {}
for i = 1, 1e9 do
  t[i] = string.rep("y", 1000) .. i
end
