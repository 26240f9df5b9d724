"""Acceptance: the web UI that `sprig run` serves at / , driven in a real browser (headless
Chromium through Selenium and chromedriver, Debian's packages: `make deps` installs them).
The test relies only on the UI's DOM contract (ids, classes and data- attributes), and
checks what a user would see:
  - the demo's tree loads with demo-temp in it, its value badge changes without a reload
    (the demo samples at 2 Hz) and the header says "live";
  - the search box hides rows that do not match and shows them again when cleared;
  - demo-temp's detail charts its value from history, growing live;
  - demo-temp's detail saves sampleRate 5 (the API then reads 5) and refuses 5000 with
    the server's own message (naming sampleRate and its max 1000), the value staying 5;
  - the rule editor on the example rule `threshold`: a syntax error typed at the end is
    flagged by the live check with its line, and once saved shows up as the rule's error;
    the script restored and saved clears the error, compiles, and the rule's runs count
    keeps growing;
  - nodes: under demo-plant, Add child of type sync with no uri is refused with a message
    naming uri (nothing created); with uri http://... it is created and selected, the
    header's sync summary and its error point show state error naming the uri; the uri
    set to a closed mqtt:// port turns header and tree badge to connecting; Move offers
    only nodes that may hold a sync node and puts it under demo-cooler (tree and API);
    Delete, confirmed, removes it from tree, header and API and shows demo-cooler;
  - a value whose quality point turns stale is marked so on its tree badge and its value
    cell, and unmarked when it is good again;
  - a gateway whose database cannot be written (its file size limit lowered, as in
    test_store_failure.py): the header's store badge appears by itself, saying "database
    failing" with the daemon's sentence (the file, "File too large") on hover, and goes
    once the limit is lifted and the store writes again;
  - a gateway restarted under the open page: it says offline, then is live again by
    itself, with one reconnect loop (counted in the API's request counter);
  - a daemon with --token-file shows the login form; a wrong token is refused with a
    message and the form stays; the right token opens the tree, live.
Set SPRIG_SCREENSHOTS=DIR to keep tree.png and rule-editor.png there (and fail.png when
a step fails).

The browser only ever talks to 127.0.0.1: background networking, component updates and
sync are off, there is no proxy, and every host name but 127.0.0.1 fails to resolve.
chromedriver, Chromium (every process under chromedriver) and the daemons are killed by
pid at the end, pass or fail.
"""
import os
import re
import resource
import shutil
import signal
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from sprigtest import Harness, TestFailure, check, free_port, main, wait_until  # noqa: E402
from test_api import Daemon, write_token  # noqa: E402
from test_store_failure import fill_disk, set_fsize  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
EXAMPLES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts",
                        "examples")
WAIT = 15  # seconds, any single UI wait

try:
    from selenium import webdriver
    from selenium.common.exceptions import (NoSuchElementException,
                                            StaleElementReferenceException,
                                            TimeoutException, WebDriverException)
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.remote.remote_connection import RemoteConnection
    from selenium.webdriver.support.ui import WebDriverWait
except ImportError as e:  # pragma: no cover
    sys.stderr.write("FAIL test_web_ui.py: python3-selenium is missing (%s); `make deps` "
                     "installs it with chromium and chromium-driver\n" % e)
    sys.exit(1)


# --- processes ----------------------------------------------------------------------------

def proc_start_time(pid):
    """The start time (clock ticks since boot) of pid, or None when it is gone: with the
    pid it names one process, so a reused pid is never killed."""
    try:
        with open("/proc/%d/stat" % pid, "rb") as f:
            s = f.read().decode("ascii", "replace")
    except OSError:
        return None
    fields = s[s.rfind(")") + 2:].split()
    return int(fields[19])  # field 22 of proc(5)


def descendants(root):
    """[(pid, start time)] of every process under root (chromedriver: Chromium's
    browser, zygotes, renderers, GPU and utility processes)."""
    children = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d, "rb") as f:
                s = f.read().decode("ascii", "replace")
        except OSError:
            continue
        ppid = int(s[s.rfind(")") + 2:].split()[1])
        children.setdefault(ppid, []).append(int(d))
    out, todo = [], [root]
    while todo:
        for c in children.get(todo.pop(), []):
            st = proc_start_time(c)
            if st is not None:
                out.append((c, st))
                todo.append(c)
    return out


class Browser:
    """Headless Chromium through chromedriver, both started here and both stopped by pid
    in close()."""

    def __init__(self, h):
        self.h = h
        self.driver = None
        self.service = None
        self.pids = []  # (pid, start time) of chromedriver's processes

    def start(self):
        h = self.h
        opts = webdriver.ChromeOptions()
        opts.binary_location = CHROMIUM
        for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
                  "--no-default-browser-check", "--no-proxy-server",
                  "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
                  "--user-data-dir=" + h.path("chromium-profile"),
                  "--window-size=1280,860"):
            opts.add_argument(a)
        opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        RemoteConnection.set_timeout(60)  # no WebDriver command may hang the test
        self.service = Service(CHROMEDRIVER, log_path=h.path("chromedriver.log"))
        try:
            self.driver = webdriver.Chrome(service=self.service, options=opts)
        finally:
            self._note_pids()
        self.driver.set_page_load_timeout(20)
        self.driver.set_script_timeout(10)

    def _note_pids(self):
        p = getattr(self.service, "process", None)
        if p is None:
            return
        known = {pid for pid, _ in self.pids}
        for pid, st in [(p.pid, proc_start_time(p.pid))] + descendants(p.pid):
            if st is not None and pid not in known:
                self.pids.append((pid, st))

    def close(self):
        self._note_pids()
        if self.driver is not None:
            try:
                self.driver.quit()  # closes Chromium, then stops chromedriver
            except Exception as e:
                sys.stderr.write("test_web_ui.py: driver.quit(): %s\n" % e)
        p = getattr(self.service, "process", None)
        if p is not None and p.poll() is None:
            try:
                os.kill(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if p is not None:
            try:
                p.wait(timeout=10)
            except Exception:
                pass
        for pid, st in self.pids:  # whatever of Chromium outlived chromedriver
            if proc_start_time(pid) == st:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(proc_start_time(pid) == st
                                                  for pid, st in self.pids):
            time.sleep(0.05)

    def console(self, n=20):
        try:
            return ["%s %s" % (e.get("level"), e.get("message"))
                    for e in self.driver.get_log("browser")][-n:]
        except Exception:
            return []


# --- DOM helpers --------------------------------------------------------------------------

def css(drv, sel):
    """The elements matching sel now (a list, maybe empty)."""
    return drv.find_elements(By.CSS_SELECTOR, sel)


def one(drv, sel):
    """The first element matching sel, or None."""
    els = css(drv, sel)
    return els[0] if els else None


def text_of(el):
    """The element's text, hidden or not (textContent), stripped; "" for None."""
    if el is None:
        return ""
    return (el.get_attribute("textContent") or "").strip()


def shown(drv, sel):
    el = one(drv, sel)
    return el is not None and el.is_displayed()


def ui_wait(drv, what, fn, timeout=WAIT):
    """WebDriverWait for fn() to be true (elements replaced or not there yet count as not
    yet); returns its value, or fails naming `what` (a string, or a function called then
    so the message shows the page's state at the end)."""
    try:
        return WebDriverWait(drv, timeout, poll_frequency=0.1,
                             ignored_exceptions=(StaleElementReferenceException,
                                                 NoSuchElementException)
                             ).until(lambda d: fn())
    except TimeoutException:
        raise TestFailure("within %d s: %s" % (timeout, what() if callable(what) else what))


def row(node):
    """The tree row (div.row) of node: not the rows of its children."""
    return '#tree li.node[data-node="%s"] > div.row' % node


def badge(drv, node):
    return text_of(one(drv, row(node) + " > span.badge"))


def live_text(drv):
    return text_of(one(drv, "#live")).lower()


def clear_and_type(el, text):
    """What a user does to replace an input's content: select all, type over it."""
    el.click()
    el.send_keys(Keys.CONTROL, "a")
    el.send_keys(Keys.BACKSPACE)
    if text:
        el.send_keys(text)


# --- HTTP API -----------------------------------------------------------------------------



# --- the steps ----------------------------------------------------------------------------

def step_tree(drv, base):
    t0 = time.monotonic()
    drv.get(base + "/")
    check(drv.title == "sprig", "the page's title is %r, expected \"sprig\"" % drv.title)
    ui_wait(drv, lambda: "the tree has no demo-temp row (tree: %r)"
            % text_of(one(drv, "#tree"))[:300],
            lambda: one(drv, row("demo-temp")) is not None and
            one(drv, row("demo-temp")).is_displayed())
    # A figure, not a check (shared machines are noisy): README, "Performance".
    print("tree: page loaded and the demo tree drawn %.0f ms after the request"
          % ((time.monotonic() - t0) * 1000))
    first = ui_wait(drv, "demo-temp's badge shows a value",
                    lambda: badge(drv, "demo-temp"))
    ui_wait(drv, lambda: "demo-temp's badge stayed %r without a reload (the demo samples at "
            "2 Hz)" % badge(drv, "demo-temp"),
            lambda: badge(drv, "demo-temp") not in ("", first))
    ui_wait(drv, lambda: "#live says %r, expected \"live\"" % live_text(drv),
            lambda: live_text(drv) == "live")
    print("tree: demo-temp's badge went %r -> %r live, #live %r"
          % (first, badge(drv, "demo-temp"), live_text(drv)))


def step_search(drv):
    search = one(drv, "#search")
    check(search is not None and search.is_displayed(), "no visible #search box")
    clear_and_type(search, "threshold")
    ui_wait(drv, lambda: "searching \"threshold\": the threshold row is %s and demo-temp's "
            "is %s; expected threshold shown and demo-temp hidden"
            % ("shown" if shown(drv, row("threshold")) else "hidden",
               "shown" if shown(drv, row("demo-temp")) else "hidden"),
            lambda: shown(drv, row("threshold")) and not shown(drv, row("demo-temp")))
    clear_and_type(one(drv, "#search"), "")
    ui_wait(drv, "the search box cleared: demo-temp's row is shown again",
            lambda: shown(drv, row("demo-temp")) and shown(drv, row("threshold")))
    print("search: \"threshold\" hides demo-temp, clearing shows it again")


def point_row(pt):
    return '#detail table#points tr.point[data-point="%s"]' % pt


def cell_value(drv, pt):
    """The point's td.value text without its unit (span.unit)."""
    td = one(drv, point_row(pt) + " td.value")
    if td is None:
        return None
    unit = text_of(one(drv, point_row(pt) + " td.value span.unit"))
    t = text_of(td)
    if unit and t.endswith(unit):
        t = t[:-len(unit)]
    return t.strip()


def save_point(drv, pt, text):
    """Types text into the point's editor and clicks its save button."""
    inp = one(drv, point_row(pt) + " .editor input")
    check(inp is not None, "%s has no input in its editor (row: %r)"
          % (pt, text_of(one(drv, point_row(pt)))))
    clear_and_type(inp, text)
    one(drv, point_row(pt) + " button.save").click()


def step_detail(drv, d, shots):
    one(drv, row("demo-temp")).click()
    ui_wait(drv, lambda: "clicking demo-temp's row: #detail is for %r"
            % (one(drv, "#detail").get_attribute("data-node"),),
            lambda: one(drv, '#detail[data-node="demo-temp"]') is not None)
    ui_wait(drv, "demo-temp's tree item gets class selected",
            lambda: "selected" in (one(drv, '#tree li.node[data-node="demo-temp"]')
                                   .get_attribute("class") or "").split())
    ui_wait(drv, "demo-temp's detail has a sampleRate row with an input",
            lambda: one(drv, point_row("sampleRate") + " .editor input") is not None)

    def chart_samples():
        m = re.search(r"\((\d+) samples\)", text_of(one(drv, "#value-chart figcaption")))
        return int(m.group(1)) if m else None
    n0 = ui_wait(drv, lambda: "demo-temp's value chart counts its samples (caption %r)"
                 % text_of(one(drv, "#value-chart figcaption")),
                 lambda: chart_samples() and (chart_samples(),))[0]
    ui_wait(drv, lambda: "the value chart grows past %d samples live (caption %r)"
            % (n0, text_of(one(drv, "#value-chart figcaption"))),
            lambda: (chart_samples() or 0) > n0 and
            len((one(drv, "#value-chart polyline").get_attribute("points") or "").split()) > 2)
    print("detail: value chart %r" % text_of(one(drv, "#value-chart figcaption")))

    save_point(drv, "sampleRate", "5")
    ui_wait(drv, lambda: "saving sampleRate 5: no span.msg.ok (message: %r)"
            % text_of(one(drv, point_row("sampleRate") + " span.msg")),
            lambda: one(drv, point_row("sampleRate") + " span.msg.ok") is not None)
    wait_until(lambda: "the API reads sampleRate %r after the UI saved 5"
               % d.points("demo-temp").get("sampleRate"),
               lambda: d.points("demo-temp")["sampleRate"]["value"] == 5, 5)
    ui_wait(drv, lambda: "after saving 5, sampleRate's value cell shows 5 (it shows %r)"
            % cell_value(drv, "sampleRate"),
            lambda: cell_value(drv, "sampleRate") == "5")
    print("detail: sampleRate 5 saved (%r), the API reads 5, the value cell %r"
          % (text_of(one(drv, point_row("sampleRate") + " span.msg")),
             text_of(one(drv, point_row("sampleRate") + " td.value"))))
    if shots:
        drv.save_screenshot(os.path.join(shots, "tree.png"))

    save_point(drv, "sampleRate", "5000")
    err = ui_wait(drv, lambda: "saving sampleRate 5000: no span.msg.error (message: %r)"
                  % text_of(one(drv, point_row("sampleRate") + " span.msg")),
                  lambda: text_of(one(drv, point_row("sampleRate") + " span.msg.error")))
    check("sampleRate" in err and "1000" in err,
          "the refusal of sampleRate 5000 reads %r: expected the server's message naming "
          "sampleRate and its max 1000" % err)
    time.sleep(0.5)  # had it been written anyway, the API would show it by now
    v = d.points("demo-temp")["sampleRate"]["value"]
    check(v == 5, "after the refused 5000 the API reads sampleRate %r, expected 5" % v)
    check(cell_value(drv, "sampleRate") == "5", "after the refused 5000 sampleRate's value "
          "cell shows %r, expected 5" % text_of(one(drv, point_row("sampleRate") + " td.value")))
    print("detail: sampleRate 5000 refused: %r; the API still reads 5" % err)


def rule_state(drv):
    chk = one(drv, "#rule-check")
    return ("#rule-check %r class %r data-line %r; #rule-error %r; #rule-runs %r"
            % (text_of(chk), chk.get_attribute("class") if chk else None,
               chk.get_attribute("data-line") if chk else None,
               text_of(one(drv, "#rule-error")), text_of(one(drv, "#rule-runs"))))


def script_value(drv):
    el = one(drv, "textarea#script")
    return el.get_property("value") if el is not None else None


def classes(drv, sel):
    el = one(drv, sel)
    return (el.get_attribute("class") or "").split() if el is not None else []


def runs(drv):
    t = text_of(one(drv, "#rule-runs"))
    return int(t) if t.isdigit() else None


def step_rule(drv, d, shots):
    orig = d.points("threshold")["script"]["text"]
    base = orig if orig.endswith("\n") else orig + "\n"
    bad = "local x = = 1"
    line = base.count("\n") + 1  # the line the bad statement lands on
    mark = ":%d:" % line

    one(drv, row("threshold")).click()
    ui_wait(drv, "selecting threshold: #detail is for threshold with a #rule-editor",
            lambda: one(drv, '#detail[data-node="threshold"]') is not None and
            shown(drv, "#rule-editor"))
    ui_wait(drv, lambda: "textarea#script holds threshold's script (it holds %d chars, "
            "the script %d)" % (len(script_value(drv) or ""), len(orig)),
            lambda: script_value(drv) == orig)

    # A user's typo: a line typed at the end of the script.
    ta = one(drv, "textarea#script")
    ta.click()
    ta.send_keys(Keys.CONTROL, Keys.END)
    ta.send_keys(("" if orig.endswith("\n") else "\n") + bad)
    check(script_value(drv) == base + bad,
          "after typing at the end, the textarea ends with %r"
          % (script_value(drv) or "")[-60:])
    ui_wait(drv, lambda: "the live check flags line %d: %s" % (line, rule_state(drv)),
            lambda: "error" in classes(drv, "#rule-check") and
            mark in text_of(one(drv, "#rule-check")) and
            one(drv, "#rule-check").get_attribute("data-line") == str(line))
    print("rule: the live check says %r" % text_of(one(drv, "#rule-check")))
    one(drv, "#rule-save").click()
    ui_wait(drv, lambda: "saved with the error, #rule-error names line %d: %s"
            % (line, rule_state(drv)),
            lambda: mark in text_of(one(drv, "#rule-error")))
    api_err = d.points("threshold")["error"]["text"]
    check(mark in api_err, "the API's error point of threshold is %r, expected line %d"
          % (api_err, line))
    print("rule: saved broken, #rule-error %r" % text_of(one(drv, "#rule-error")))

    # The user takes the typo back: the script is the original again.
    drv.execute_script(
        "const t = arguments[0]; t.value = arguments[1];"
        "t.dispatchEvent(new Event('input', {bubbles: true}));",
        one(drv, "textarea#script"), orig)
    ui_wait(drv, lambda: "the restored script compiles: %s" % rule_state(drv),
            lambda: "ok" in classes(drv, "#rule-check") and
            "compiles" in text_of(one(drv, "#rule-check")))
    one(drv, "#rule-save").click()
    wait_until(lambda: "the API reads threshold's script back as the original (%d chars)"
               % len(d.points("threshold")["script"]["text"]),
               lambda: d.points("threshold")["script"]["text"] == orig, 5)
    ui_wait(drv, lambda: "the restored script saved, #rule-error is empty (the API's error "
            "point: %r): %s" % (d.points("threshold")["error"]["text"],
                                rule_state(drv)),
            lambda: text_of(one(drv, "#rule-error")) == "" and
            d.points("threshold")["error"]["text"] == "")
    n0 = ui_wait(drv, lambda: "#rule-runs shows a count: %s" % rule_state(drv),
                 lambda: runs(drv) is not None and (runs(drv),))[0]
    ui_wait(drv, lambda: "#rule-runs grows past %d (threshold runs on every demo-temp "
            "value): %s" % (n0, rule_state(drv)),
            lambda: (runs(drv) or 0) > n0)
    print("rule: restored, #rule-error empty, #rule-check %r, runs %d -> %d"
          % (text_of(one(drv, "#rule-check")), n0, runs(drv)))
    if shots:
        drv.save_screenshot(os.path.join(shots, "rule-editor.png"))


def sync_badge(drv, node):
    el = one(drv, '#sync-summary span.sync[data-node="%s"]' % node)
    return el.get_attribute("data-state") if el is not None else None


def step_nodes(drv, d):
    """Add a sync node under demo-plant, watch its state, move it, delete it."""
    one(drv, row("demo-plant")).click()
    ui_wait(drv, "selecting demo-plant shows its detail",
            lambda: one(drv, '#detail[data-node="demo-plant"]') is not None)
    one(drv, "#add-child").click()
    ui_wait(drv, "Add child opens a form with #new-type", lambda: shown(drv, "#new-type"))
    drv.execute_script("const s = arguments[0]; s.value = 'sync';"
                       "s.dispatchEvent(new Event('change'));", one(drv, "#new-type"))
    uri = ui_wait(drv, "the sync form asks for its required uri",
                  lambda: one(drv, '#action-form input[name="uri"]'))
    clear_and_type(one(drv, "#new-id"), "ui-sync")
    one(drv, "#create-node").click()
    msg = ui_wait(drv, "creating a sync node with no uri is refused with a message",
                  lambda: text_of(one(drv, "#action-msg.error")))
    check("uri" in msg, "the refusal names the missing uri: %r" % msg)
    check(d.node("ui-sync") is None, "a refused create made node ui-sync")
    clear_and_type(uri, "http://127.0.0.1:1")
    one(drv, "#create-node").click()
    ui_wait(drv, lambda: "creating ui-sync selects it (#detail is for %r, message %r)"
            % (one(drv, "#detail").get_attribute("data-node"),
               text_of(one(drv, "#action-msg"))),
            lambda: one(drv, '#detail[data-node="ui-sync"]') is not None)
    n = d.node("ui-sync")
    check(n is not None and n["type"] == "sync" and n["parent"] == "demo-plant",
          "the API has ui-sync, a sync node under demo-plant: %r" % n)
    ui_wait(drv, lambda: "a sync node with uri http://...: the header shows it in state "
            "error (it shows %r)" % sync_badge(drv, "ui-sync"),
            lambda: sync_badge(drv, "ui-sync") == "error")
    err = ui_wait(drv, "ui-sync's error point is shown with the reason",
                  lambda: text_of(one(drv, point_row("error") + " td.value")).strip("\u2014"))
    check("http://127.0.0.1:1" in err, "ui-sync's error names its uri: %r" % err)
    print("nodes: sync node ui-sync created from the UI, header state error: %r" % err)

    closed = free_port()
    save_point(drv, "uri", "mqtt://127.0.0.1:%d" % closed)
    ui_wait(drv, lambda: "uri set to a closed port: the header shows ui-sync connecting "
            "(it shows %r)" % sync_badge(drv, "ui-sync"),
            lambda: sync_badge(drv, "ui-sync") == "connecting")
    ui_wait(drv, lambda: "ui-sync's tree badge says connecting (%r)" % badge(drv, "ui-sync"),
            lambda: badge(drv, "ui-sync") == "connecting")
    print("nodes: uri mqtt://127.0.0.1:%d, state connecting in header and tree" % closed)

    one(drv, "#move-node").click()
    target = ui_wait(drv, "Move opens a form with #move-parent",
                     lambda: one(drv, "#move-parent"))
    opts = [o.get_attribute("value") for o in target.find_elements(By.TAG_NAME, "option")]
    check("demo-cooler" in opts and "demo-temp" not in opts,
          "the move targets are the nodes that may hold a sync node: %r" % opts)
    drv.execute_script("arguments[0].value = 'demo-cooler';", target)
    one(drv, "#move-submit").click()
    ui_wait(drv, "after the move the tree shows ui-sync under demo-cooler",
            lambda: one(drv, '#tree li.node[data-node="demo-cooler"] '
                             'li.node[data-node="ui-sync"]') is not None)
    n = d.node("ui-sync")
    check(n["parents"] == ["demo-cooler"], "the API has ui-sync under demo-cooler: %r" % n)
    print("nodes: ui-sync moved under demo-cooler")

    one(drv, "#delete-node").click()
    ui_wait(drv, "Delete asks to confirm", lambda: shown(drv, "#delete-confirm"))
    one(drv, "#delete-confirm").click()
    ui_wait(drv, "after the delete ui-sync leaves the tree and the header",
            lambda: one(drv, row("ui-sync")) is None and sync_badge(drv, "ui-sync") is None)
    ui_wait(drv, "after the delete the detail shows the parent, demo-cooler",
            lambda: one(drv, '#detail[data-node="demo-cooler"]') is not None)
    n = d.node("ui-sync")
    check(n is None or n.get("deleted") is True, "the API still has ui-sync live: %r" % n)
    print("nodes: ui-sync deleted")


def step_quality(drv, d):
    """A value whose quality goes stale and back, as a Modbus IO's does (written here
    through the API on an open group): the tree badge and the value cell say so."""
    sel = '#tree li.node[data-node="demo-cooler"] > div.row > span.badge'
    d.expect(200, "POST", "/v1/nodes/demo-cooler/points",
             [{"type": "value", "value": 7.5}, {"type": "quality", "text": "stale"}])
    ui_wait(drv, lambda: "demo-cooler's badge shows 7.5 marked stale (%r, class %r)"
            % (badge(drv, "demo-cooler"), classes(drv, sel)),
            lambda: badge(drv, "demo-cooler") == "7.5" and "stale" in classes(drv, sel))
    one(drv, row("demo-cooler")).click()
    ui_wait(drv, "demo-cooler's value cell is marked stale",
            lambda: one(drv, point_row("value") + ' td.value[data-quality="stale"]')
            is not None)
    d.expect(200, "POST", "/v1/nodes/demo-cooler/points",
             [{"type": "value", "value": 8}, {"type": "quality", "text": "good"}])
    ui_wait(drv, lambda: "back to good: the badge shows 8 unmarked (%r, class %r)"
            % (badge(drv, "demo-cooler"), classes(drv, sel)),
            lambda: badge(drv, "demo-cooler") == "8" and "stale" not in classes(drv, sel)
            and one(drv, point_row("value") + ' td.value[data-quality="good"]') is not None)
    print("quality: stale shown on the badge and the value cell, and cleared when good")


def step_store(drv, h):
    """The database cannot be written: the header says so (polled every 5 s), with the
    reason on hover, and stops saying so once writing works again."""
    db = h.path("store.db")
    d = Daemon(h, db, "--rules", "off", name="store")
    root = d.status()["root"]
    drv.get("http://127.0.0.1:%d/" % d.port)
    ui_wait(drv, "the page is live", lambda: live_text(drv) == "live")
    check(not shown(drv, "#store"), "the store badge shows while the store is ok: %r"
          % text_of(one(drv, "#store")))
    fill_disk(d)
    deadline = time.monotonic() + 30
    for i in range(1000):
        r = d.post("/v1/nodes/%s/points" % root, [{"type": "n", "value": i}])
        if r.status == 503:
            break
        check(r.status == 200 and time.monotonic() < deadline,
              "filling the disk: POST answered %r" % r)
    el = ui_wait(drv, lambda: "the store badge does not show the failure: %r (hidden %r)"
                 % (text_of(one(drv, "#store")), one(drv, "#store").get_attribute("hidden")),
                 lambda: shown(drv, "#store") and one(drv, "#store"), timeout=WAIT)
    title = el.get_attribute("title") or ""
    check("database failing" in text_of(el) and db in title and "File too large" in title,
          "the store badge must say the database is failing and why on hover: %r / %r"
          % (text_of(el), title))
    print("store: the header says %r (hover: %s)" % (text_of(el), title))
    set_fsize(d.proc.pid, resource.RLIM_INFINITY)
    ui_wait(drv, "the store badge stays after the store recovered",
            lambda: not shown(drv, "#store"))
    d.stop()
    print("store: the badge went once the database could be written again")


def step_restart(drv, h):
    """The gateway restarts under an open page: the page says offline, then comes back
    live by itself with one reconnect loop (not one more per failed attempt)."""
    port = free_port()
    db = h.path("restart.db")
    args = ("--demo", "--rules", "off", "--listen", "127.0.0.1:%d" % port)
    d = Daemon(h, db, *args, name="restart-1")
    drv.get("http://127.0.0.1:%d/" % port)
    ui_wait(drv, "the page is live on the gateway to restart",
            lambda: live_text(drv) == "live" and badge(drv, "demo-temp") != "")
    d.stop()
    ui_wait(drv, lambda: "the gateway stopped: #live says %r, expected offline"
            % live_text(drv), lambda: live_text(drv) == "offline" and shown(drv, "#banner"))
    print("restart: gateway stopped, the page says offline: %r"
          % text_of(one(drv, "#banner")))
    time.sleep(4)  # a few failed attempts while it is down
    d = Daemon(h, db, *args, name="restart-2")
    ui_wait(drv, lambda: "the gateway is back: #live says %r, banner %r"
            % (live_text(drv), text_of(one(drv, "#banner"))),
            lambda: live_text(drv) == "live" and not shown(drv, "#banner"), timeout=20)
    first = badge(drv, "demo-temp")
    ui_wait(drv, "after the restart demo-temp's badge moves again",
            lambda: badge(drv, "demo-temp") not in ("", first))
    time.sleep(2)
    n = d.status()["api"]["requests"]
    # One reconnect is 4 requests (events, status, schema, nodes) and the status call
    # above is one more; parallel loops would each add theirs.
    check(n <= 8, "after the restart the page made %d API requests: more than one "
          "reconnect loop" % n)
    print("restart: back live by itself, %d API requests since the restart" % n)


def step_token(drv, h):
    token, tf = write_token(h)
    d = Daemon(h, h.path("token.db"), token_file=tf, token=token, name="token")
    root = d.status()["root"]
    drv.get("http://127.0.0.1:%d/" % d.port)
    ui_wait(drv, "a daemon with --token-file: #login is shown", lambda: shown(drv, "#login"))

    clear_and_type(one(drv, "input#token"), "wrong-" + token)
    one(drv, "#login-submit").click()
    err = ui_wait(drv, "a wrong token: #login-error says why",
                  lambda: text_of(one(drv, "#login-error")))
    check(shown(drv, "#login"), "after a wrong token the login form is hidden")
    check(one(drv, "#tree li.node") is None or not shown(drv, "#tree li.node"),
          "after a wrong token the tree shows nodes")
    print("token: a wrong token is refused: %r" % err)

    clear_and_type(one(drv, "input#token"), token)
    one(drv, "#login-submit").click()
    ui_wait(drv, lambda: "the right token: #login is hidden (#login-error %r)"
            % text_of(one(drv, "#login-error")),
            lambda: not shown(drv, "#login"))
    ui_wait(drv, "the right token: the tree shows the root node %s" % root,
            lambda: shown(drv, '#tree li.node[data-node="%s"] > div.row' % root))
    ui_wait(drv, lambda: "the right token: #live says %r, expected \"live\"" % live_text(drv),
            lambda: live_text(drv) == "live")
    print("token: the right token opens the tree (root %s), live" % root)


def test():
    for path in (CHROMIUM, CHROMEDRIVER):
        check(os.access(path, os.X_OK), "%s is missing: `make deps` installs chromium and "
              "chromium-driver" % path)
    shots = os.environ.get("SPRIG_SCREENSHOTS") or None
    if shots:
        os.makedirs(shots, exist_ok=True)
    with Harness("web-ui") as h:
        rules = h.path("rules")
        os.makedirs(rules)
        for f in sorted(os.listdir(EXAMPLES)):
            if f.endswith(".lua"):
                shutil.copy(os.path.join(EXAMPLES, f), rules)
        d = Daemon(h, h.path("ui.db"), "--demo", "--rules", rules, name="demo")
        d.status()
        b = Browser(h)
        try:
            b.start()
            drv = b.driver
            try:
                step_tree(drv, "http://127.0.0.1:%d" % d.port)
                step_search(drv)
                step_detail(drv, d, shots)
                step_rule(drv, d, shots)
                step_nodes(drv, d)
                step_quality(drv, d)
                step_store(drv, h)
                step_restart(drv, h)
                step_token(drv, h)
            except Exception:
                if shots:
                    try:
                        drv.save_screenshot(os.path.join(shots, "fail.png"))
                    except WebDriverException:
                        pass
                lines = b.console()
                if lines:
                    sys.stderr.write("browser console (last %d):\n%s\n"
                                     % (len(lines), "\n".join(lines)))
                raise
        finally:
            b.close()


if __name__ == "__main__":
    main(test)
