"""`sprig schema check` as a user runs it from the source tree: the shipped folder checks
clean when it is also named on the command line (`schema`, `./schema/`, an absolute path,
a symlink to it, twice), since a folder is loaded once however it is named; a copy of a
folder is another folder, whose types are declared twice; `sprig run --schema` and
`sprig rule test --schema` with the shipped folder work; and a bad point is reported at its own line (or its attribute's),
not at the nodetype line."""
import os
import re
import shutil
import subprocess
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree

from sprigtest import Harness, check, main
from test_api import Daemon

SOURCE = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def schema_check(h, *dirs, cwd=None):
    """`sprig schema check DIR...` from cwd (the harness folder by default), bounded."""
    r = subprocess.run([h.sprig, "schema", "check"] + list(dirs), cwd=cwd or h.dir,
                       stdin=subprocess.DEVNULL, capture_output=True, timeout=30, text=True,
                       errors="replace")
    return r


def expect_ok(h, dirs, cwd, types):
    r = schema_check(h, *dirs, cwd=cwd)
    shown = "sprig schema check %s (in %s)" % (" ".join(dirs), cwd)
    check(r.returncode == 0, "%s: exit %d\nstdout:\n%s\nstderr:\n%s"
          % (shown, r.returncode, r.stdout, r.stderr))
    check("declared twice" not in r.stdout + r.stderr, "%s: %s" % (shown, r.stdout))
    m = re.search(r"^(\d+) types ok$", r.stdout, re.M)
    check(m is not None and int(m.group(1)) == types,
          "%s: expected \"%d types ok\": %r" % (shown, types, r.stdout))


def test():
    with Harness("schema-check") as h:
        shipped = os.path.join(SOURCE, "schema")
        r = schema_check(h, cwd=SOURCE)
        check(r.returncode == 0, "sprig schema check (no folder): %r %r" % (r.stdout, r.stderr))
        n = int(re.search(r"^(\d+) types ok$", r.stdout, re.M).group(1))
        check(n >= 5, "the shipped folder has %d types" % n)

        link = h.path("shipped-link")
        os.symlink(shipped, link)
        # The README's command, from the source tree, and the same folder by other names.
        for dirs in (["schema"], ["./schema/"], [shipped], ["schema", "schema"],
                     ["schema", "./schema", shipped + "/", link]):
            expect_ok(h, dirs, SOURCE, n)
        expect_ok(h, [link], h.dir, n)
        expect_ok(h, ["shipped-link", link + "/"], h.dir, n)

        # A folder of one's own, named twice and through a link: its type counts once.
        mine = h.path("mine")
        os.mkdir(mine)
        with open(os.path.join(mine, "tank.lua"), "w") as f:
            f.write('nodetype "tank" {\n  points = { level = { kind = "number" } },\n}\n')
        os.symlink(mine, h.path("mine-link"))
        expect_ok(h, ["mine", "mine", "mine-link", mine, link], h.dir, n + 1)

        # A copy is another folder: its type is declared twice, and that is an error.
        shutil.copytree(mine, h.path("copy"))
        r = schema_check(h, "mine", "copy")
        check(r.returncode == 1 and "copy/tank.lua:1: type tank is declared twice" in r.stdout,
              "sprig schema check mine copy: %r %r" % (r.stdout, r.stderr))

        # A bad point or attribute is named at its own line, as the README shows.
        bad = h.path("bad")
        os.mkdir(bad)
        files = {
            "tank.lua": ('nodetype "tank" {\n'
                         '  points = {\n'
                         '    level = { kind = "number", min = 10, max = 5 },\n'
                         '  },\n'
                         '}\n'),
            "pump.lua": ('-- mode = { kind = "enum" } in a comment\n'
                         'nodetype "pump" {\n'
                         '  description = "mode = {",\n'
                         '  points = {\n'
                         '    speed = { kind = "number" },\n'
                         '    ["mode"] = {\n'
                         '      values = { "auto", "manual" },\n'
                         '      kind = "nombre",\n'
                         '    },\n'
                         '  },\n'
                         '}\n'),
            "pumpIo.lua": ('nodetype "pumpIo" {\n'
                           '  extends = "modbusIO",\n'
                           '  points = { rpmMax = { kind = "number", min = 0 } },\n'
                           '}\n'),
        }
        for name, text in files.items():
            with open(os.path.join(bad, name), "w") as f:
                f.write(text)
        r = schema_check(h, "bad")
        want = ['bad/pump.lua:8: type pump: point "mode" kind "nombre" is not number, integer, '
                'bool, text or enum',
                'bad/tank.lua:3: type tank: point "level" min 10 is above max 5',
                # Found when every file has run: after the others.
                'bad/pumpIo.lua:2: type pumpIo extends unknown type modbusIO',
                '3 errors']
        check(r.returncode == 1 and r.stdout.splitlines() == want,
              "sprig schema check bad: exit %d, expected:\n%s\ngot:\n%s%s"
              % (r.returncode, "\n".join(want), r.stdout, r.stderr))

        # `sprig rule test` loads the shipped folder given again, through a link, once.
        examples = os.path.join(SOURCE, "scripts", "examples")
        r = subprocess.run([h.sprig, "rule", "test", os.path.join(examples, "debounce.lua"),
                            "--steps", os.path.join(examples, "debounce.test.lua"),
                            "--schema", link, "--quiet"],
                           cwd=h.dir, stdin=subprocess.DEVNULL, capture_output=True,
                           timeout=60, text=True, errors="replace")
        check(r.returncode == 0 and "PASS debounce.lua" in r.stdout,
              "sprig rule test --schema %s: exit %d\n%s%s"
              % (link, r.returncode, r.stdout, r.stderr))

        # The daemon loads the shipped folder given again, through a link, once.
        d = Daemon(h, h.path("s.db"), "--schema", link, name="run")
        t = d.expect(200, "GET", "/v1/schema/device")
        check(t.get("name") == "device", "GET /v1/schema/device: %r" % t)
        d.stop()


if __name__ == "__main__":
    main(test)
