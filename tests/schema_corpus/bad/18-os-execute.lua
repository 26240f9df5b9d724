-- expect: attempt to index a nil value (global 'os')
-- line: 3
os.execute("touch /tmp/sprig-schema-pwned")
nodetype "a" {}
