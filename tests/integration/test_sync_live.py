"""Acceptance: live forwarding applies what it can of a change that the upstream's schema
refuses in part, against a real mosquitto and a real upstream (`sprig run --serve-sync`).
The gateway declares a type tank with level up to 1,000; the upstream's tank allows up to
100. Once a tank is synced, one API call on the gateway writes its description and a
level of 500 (one pts message, both points of one node):
  - the upstream takes the description and refuses the level alone, logging the refusal
    with the device's name and the rule broken;
  - a later level of 50 arrives as well.
The daemons and the broker are stopped by pid; every wait is bounded.
"""
import os
import re
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from sprigtest import Harness, check, main, wait_until  # noqa: E402
from test_api import Daemon  # noqa: E402
from broker import Broker  # noqa: E402

TANK = """nodetype "tank" {
  description = "A tank",
  parents = { "device", "group" },
  points = {
    description = { kind = "text" },
    level = { kind = "number", min = 0, max = %d },
  },
}
"""


def schema_dir(h, name, top):
    d = h.path(name)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "tank.lua"), "w") as f:
        f.write(TANK % top)
    return d


def test():
    with Harness("sync_live") as h:
        b = Broker(h)
        up = Daemon(h, h.path("up.db"), "--rules", "off", "--serve-sync", "--sync-broker",
                    b.uri, "--schema", schema_dir(h, "up-schema", 100), name="up")
        gw = Daemon(h, h.path("gw.db"), "--rules", "off", "--schema",
                    schema_dir(h, "gw-schema", 1000), name="gw")
        root = gw.status()["root"]
        gw.expect(201, "POST", "/v1/nodes", {"id": "tank1", "type": "tank", "parent": root,
                                             "points": [{"type": "description", "text": "v0"},
                                                        {"type": "level", "value": 10}]})
        gw.expect(201, "POST", "/v1/nodes", {"id": "up1", "type": "sync", "parent": root,
                                             "points": [{"type": "uri", "text": b.uri}]})

        def on_up():
            r = up.get("/v1/nodes/tank1")
            if r.status != 200:
                return {}
            return {p["type"]: p for p in r.json()["points"]}

        wait_until("the tank reaches the upstream",
                   lambda: on_up().get("level", {}).get("value") == 10, 60, every=0.1)
        wait_until("the gateway is in sync",
                   lambda: gw.points("up1").get("state", {}).get("text") == "insync", 60)

        gw.expect(200, "POST", "/v1/nodes/tank1/points",
                  [{"type": "description", "text": "v1"}, {"type": "level", "value": 500}])
        wait_until("the description of the same call reaches the upstream",
                   lambda: on_up().get("description", {}).get("text") == "v1", 30, every=0.1)
        check(on_up()["level"]["value"] == 10,
              "the upstream took level %r, above its max 100" % on_up()["level"])
        wait_until("the upstream logs the refused level",
                   lambda: re.search(r"a change from device \S+ is refused: .*level.*500",
                                     up.proc.stderr()), 10)

        gw.expect(200, "POST", "/v1/nodes/tank1/points", [{"type": "level", "value": 50}])
        wait_until("a later level of 50 reaches the upstream",
                   lambda: on_up().get("level", {}).get("value") == 50, 30, every=0.1)
        gw.stop()
        up.stop()
        b.stop()


if __name__ == "__main__":
    main(test)
