#!/usr/bin/env python3
"""dedup-restart.py — how long a node takes after a restart to rebuild its
table of exactly-once request keys, and what the keys cost in memory.

Fills stream `keys` with TARGET (default 1,000,000) one-record pushes, each
with a fresh Idempotency-Key (wrk + idempotency.lua, MODE=keyed), then
restarts the node: clean (SIGTERM) and crash (SIGKILL), twice each, and one
cold-cache clean restart (drop_caches, needs root). For each restart prints
the time from process start to `listening on`, to /readyz 200 and to
dedup.keys back at its count, and the RSS after the rebuild.

env: NODE_BIN (default target/release/intake, built if missing), TARGET, PORT (46812), CONNS (64), KEEP=1 keeps the
data dir.
"""
import json, os, signal, subprocess, sys, tempfile, time, urllib.request, shutil

here = os.path.dirname(os.path.abspath(__file__))
root = os.path.dirname(here)
bin_ = os.environ.get("NODE_BIN") or os.path.join(root, "target/release/intake")
if not os.environ.get("NODE_BIN"):
    subprocess.run(["cargo", "build", "-q", "--release", "-p", "intake"], cwd=root, check=True)
target = int(os.environ.get("TARGET", "1000000"))
port = int(os.environ.get("PORT", "46812"))
conns = int(os.environ.get("CONNS", "64"))
url = f"http://127.0.0.1:{port}"
data = tempfile.mkdtemp(prefix="intake-dedup-", dir="/tmp")
node = None
log = print


def get(path, timeout=2):
    with urllib.request.urlopen(url + path, timeout=timeout) as r:
        return r.status, r.read()


def dedup():
    return json.loads(get("/v1/streams/keys")[1])["dedup"]


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS"):
                return int(line.split()[1]) / 1024
    return None


def start():
    """Start the node; return (popen, t0, seconds to `listening on`)."""
    out = os.path.join(data, "stdout")
    err = open(os.path.join(data, "stderr"), "ab")
    open(out, "w").close()
    t0 = time.monotonic()
    p = subprocess.Popen([bin_, "serve", "--listen", f"127.0.0.1:{port}", "--data-dir", data],
                         stdout=open(out, "ab"), stderr=err)
    while True:
        with open(out) as f:
            if "listening on" in f.read():
                return p, t0, time.monotonic() - t0
        if p.poll() is not None:
            sys.exit(f"node exited: {open(os.path.join(data, 'stderr')).read()[-2000:]}")
        time.sleep(0.002)


def restart(kind, count):
    global node
    if kind == "crash":
        node.send_signal(signal.SIGKILL)
        node.wait()
    else:
        t = time.monotonic()
        node.send_signal(signal.SIGTERM)
        node.wait()
        stop = time.monotonic() - t
    cold = kind == "cold"
    if cold:
        subprocess.run("sync; echo 3 > /proc/sys/vm/drop_caches", shell=True, check=True)
    node, t0, listening = start()
    ready = None
    while ready is None:
        try:
            if get("/readyz", timeout=1)[0] == 200:
                ready = time.monotonic() - t0
                break
        except Exception:
            pass
        time.sleep(0.05)
    keys_at_ready = None
    while True:
        try:
            k = dedup()["keys"]
        except Exception:
            k = None
        if keys_at_ready is None and k is not None:
            keys_at_ready = k
        if k is not None and k >= count:
            rebuilt = time.monotonic() - t0
            break
        if time.monotonic() - t0 > 600:
            sys.exit(f"keys stuck at {k}")
        time.sleep(0.05)
    time.sleep(0.5)
    d = dedup()
    extra = f", SIGTERM to exit {stop:.2f}s" if kind != "crash" else ""
    log(f"{kind:5} restart: listening {listening:.3f}s, ready {ready:.3f}s, keys rebuilt {rebuilt:.3f}s"
        f" (keys at first poll {keys_at_ready}); after: keys {d['keys']}, dedup.bytes {d['bytes']},"
        f" RSS {rss_mib(node.pid):.0f} MiB{extra}")


def du():
    return subprocess.run(["du", "-sh", data], capture_output=True, text=True).stdout.split()[0]


try:
    log(f"binary {bin_}, data dir {data}")
    node, _, listening = start()
    req = urllib.request.Request(url + "/v1/streams", data=b'{"name":"keys"}',
                                 headers={"content-type": "application/json"}, method="POST")
    urllib.request.urlopen(req).read()
    time.sleep(1)
    rss0 = rss_mib(node.pid)
    log(f"fresh node with stream created: RSS {rss0:.1f} MiB")
    n, round_ = 0, 0
    t_fill = time.monotonic()
    while n < target:
        round_ += 1
        w = subprocess.run(["wrk", "-t2", f"-c{conns}", "-d30s", "-s", os.path.join(here, "idempotency.lua"), url],
                           env=dict(os.environ, MODE="keyed", STREAM="keys", PREFIX=f"f{round_}-"),
                           capture_output=True, text=True).stdout
        rps = next((l.split()[1] for l in w.splitlines() if "Requests/sec" in l), "?")
        bad = next((l.strip() for l in w.splitlines() if "Non-2xx" in l or "Socket errors" in l), "")
        n = dedup()["keys"]
        log(f"  fill round {round_}: {rps} req/s, keys now {n} {bad}")
    log(f"filled in {time.monotonic() - t_fill:.0f}s")
    time.sleep(2)
    d = dedup()
    count = d["keys"]
    rss1 = rss_mib(node.pid)
    log(f"held: dedup {json.dumps(d)}; data dir {du()}")
    log(f"RSS {rss0:.1f} -> {rss1:.1f} MiB: {(rss1 - rss0) * 1048576 / count:.0f} B/key by RSS,"
        f" {d['bytes'] / count:.0f} B/key by dedup.bytes")
    for kind in ["clean", "crash", "clean", "crash", "cold"]:
        restart(kind, count)
finally:
    if node is not None and node.poll() is None:
        node.send_signal(signal.SIGTERM)
        node.wait()
    if os.environ.get("KEEP") != "1":
        shutil.rmtree(data, ignore_errors=True)
