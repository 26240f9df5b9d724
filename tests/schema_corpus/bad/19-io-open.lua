-- expect: attempt to index a nil value (global 'io')
-- line: 4
local f
f = io.open("/etc/passwd")
