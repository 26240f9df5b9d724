-- expect: boom
-- line: 3
error("boom")
