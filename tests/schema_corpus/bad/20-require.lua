-- expect: attempt to call a nil value (global 'require')
-- line: 3
local json = require("cjson")
nodetype "a" {}
