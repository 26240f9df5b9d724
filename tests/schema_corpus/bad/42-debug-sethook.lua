-- expect: attempt to index a nil value (global 'debug')
-- line: 3
debug.sethook()
while true do end
