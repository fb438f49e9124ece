#!/usr/bin/env python3
"""A hostile peer for redi-ps, written against proto/redi.proto with its own protobuf
encoder (no code shared with redi-ps), over pyzmq.

  hostile_peer.py outsider COORDINATOR SERVER_DATA KEYFILE
      Tries to join without the key, with a wrong key, and to pull from a server's data
      port with the run key (which is not a worker key) and without one; then sends an
      oversized frame with the run key. Prints one line per attempt and exits 0 when every
      attempt got nothing (no Welcome, no chunks).

  hostile_peer.py rogue-server COORDINATOR KEYFILE short|long|silent-load
      Holds the run key, joins as a server and answers the coordinator's first pull with
      frames that do not match the plan; the coordinator must refuse them with an error.
      silent-load: heartbeats but never acknowledges a load (runs until killed or 60 s).

  hostile_peer.py insider COORDINATOR KEYFILE
      Holds the run key: joins as a worker, then pushes gradients claiming another worker's
      index (must be refused) and non-finite gradients as itself (must be refused and end
      the run). Exits 0 when both were refused.
  hostile_peer.py insider-twice COORDINATOR KEYFILE
      Holds the run key: joins as a worker, pushes its shard of the first step (zeros), waits
      (heartbeating) until the other worker's push has completed the step's sum, then pushes
      the same shard again at the same version with large values, and only then reports the
      unit. Prints whether the second push was refused; exits 0 when it was.
  hostile_peer.py flood SERVER_DATA PID KEYFILE
      Without any key: opens 3 TCP connections to a server's data port, speaks ZMTP far
      enough to declare a 1 GiB frame and streams up to 256 MiB into each; then makes 600
      CURVE handshakes with fresh keys (the server's public key from KEYFILE, so each gets as
      far as the key check). Prints the server's resident memory growth (PID) and
      exits 0 when it stayed under 64 MiB.
  hostile_peer.py rogue-data-server COORDINATOR KEYFILE bad-pull|lying-norm
      Holds the run key and joins as a server that does everything right for the coordinator
      (acknowledges loads, resets, answers its pulls with the loaded values). bad-pull: answers
      the workers' pulls on its data port with chunks of the wrong size. lying-norm: serves
      pulls and acknowledges pushes, then reports Σg² = 1e30 for the step while its per-shard
      sums say 1. Runs until the run ends, or killed, or 90 s.
  hostile_peer.py insider-silent COORDINATOR KEYFILE
      Holds the run key: joins as a worker and heartbeats, but never pushes or reports.
      Exits 0 when the coordinator drops it.
  hostile_peer.py insider-absurd COORDINATOR KEYFILE
      Holds the run key: joins as a worker and pushes its shard of the first step with finite
      but absurd values (1e30), then reports the unit and keeps heartbeating until the run
      ends. Exits 0 when the run ended (the coordinator must refuse the contribution).
"""
import os
import struct
import sys
import time

import zmq
import zmq.utils.z85

PROTOCOL_VERSION = 4


# --- a minimal protobuf encoder/decoder -------------------------------------------------
def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def field(num, wire, payload):
    return varint(num << 3 | wire) + payload


def f_varint(num, n):
    return field(num, 0, varint(n)) if n else b""


def f_bytes(num, b):
    return field(num, 2, varint(len(b)) + b)


def f_packed(num, xs):
    return f_bytes(num, b"".join(varint(x) for x in xs)) if xs else b""


def envelope(run_id, sender, seq, body_field, body):
    return f_bytes(1, run_id.encode()) + f_bytes(2, sender.encode()) + f_varint(3, seq) + f_bytes(body_field, body)


def parse(buf):
    """Fields of one message: {number: [values]} (varints as ints, the rest as bytes)."""
    out, i = {}, 0
    while i < len(buf):
        key, i = read_varint(buf, i)
        num, wire = key >> 3, key & 7
        if wire == 0:
            v, i = read_varint(buf, i)
        elif wire == 2:
            n, i = read_varint(buf, i)
            v, i = buf[i:i + n], i + n
        elif wire == 1:
            v, i = buf[i:i + 8], i + 8
        elif wire == 5:
            v, i = buf[i:i + 4], i + 4
        else:
            raise ValueError("wire type %d" % wire)
        out.setdefault(num, []).append(v)
    return out


def read_varint(buf, i):
    n = shift = 0
    while True:
        b = buf[i]
        i += 1
        n |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return n, i


def packed(values):
    """A repeated uint field: packed bytes or single varints."""
    out = []
    for v in values:
        if isinstance(v, int):
            out.append(v)
        else:
            i = 0
            while i < len(v):
                x, i = read_varint(v, i)
                out.append(x)
    return out


def body_of(frame):
    env = parse(frame)
    for num in (11, 12, 14, 20, 22, 24):
        if num in env:
            return num, parse(env[num][0]), env.get(1, [b""])[0].decode()
    return None, {}, ""


# --- key file ---------------------------------------------------------------------------
def run_keys(path):
    for line in open(path):
        line = line.strip()
        if line.startswith("curve-secret-key"):
            secret = line.split("=", 1)[1].strip().encode()
            return zmq.curve_public(secret), secret
    raise SystemExit("no key in " + path)


def socket(ctx, endpoint, keys=None, server_key=None, identity=None):
    s = ctx.socket(zmq.DEALER)
    s.linger = 0
    s.sndtimeo = 2000  # a DEALER whose handshakes all fail has no peer: sends would block
    if identity:
        s.identity = identity
    if keys:
        s.curve_publickey, s.curve_secretkey = keys
        s.curve_serverkey = server_key
    s.connect(endpoint)
    return s


def answer(s, timeout_ms):
    if s.poll(timeout_ms):
        return s.recv_multipart()
    return None


def send(s, frames):
    """Sends; False when libzmq had no peer to take it within the send timeout."""
    try:
        s.send_multipart(frames)
        return True
    except zmq.Again:
        return False


def hello(role, data_key=b""):
    return f_varint(1, role) + f_varint(4, PROTOCOL_VERSION) + f_bytes(5, data_key)


def outsider(coordinator, data, keyfile):
    ctx = zmq.Context()
    public, secret = run_keys(keyfile)
    failures = 0
    wrong = zmq.curve_keypair()
    for label, s in [
        ("plain TCP hello to the coordinator", socket(ctx, coordinator, identity=b"outsider-plain")),
        ("CURVE hello with a wrong key", socket(ctx, coordinator, wrong, public, identity=b"outsider-wrong")),
    ]:
        got = answer(s, 3000) if send(s, [envelope("", "evil", 1, 10, hello(1, b""))]) else None
        print("%s: %s" % (label, "ANSWERED %r" % (body_of(got[0])[0],) if got else "no answer"))
        failures += got is not None
    pull = f_packed(2, [0]) + f_varint(1, 0)
    for label, s in [
        ("pull from a server's data port without a key", socket(ctx, data, identity=b"worker-0")),
        ("pull from a server's data port with the run key (not a worker key)", socket(ctx, data, (public, secret), public, identity=b"worker-0")),
        ("pull from a server's data port with a wrong key", socket(ctx, data, wrong, public, identity=b"worker-0")),
    ]:
        got = answer(s, 3000) if send(s, [envelope("", "worker-0", 1, 21, pull)]) else None
        print("%s: %s" % (label, "GOT %d frames" % len(got) if got else "no answer"))
        failures += got is not None
    # An authenticated peer sending a frame past the limit is disconnected by libzmq before
    # the frame is buffered; the coordinator stays up (the caller checks the run completes).
    s = socket(ctx, coordinator, (public, secret), public, identity=b"insider-big")
    got = answer(s, 3000) if send(s, [envelope("", "big", 1, 10, hello(1, b"")), b"\0" * (200 << 20)]) else None
    print("200 MB frame with the run key: %s" % ("ANSWERED" if got else "no answer (dropped)"))
    failures += got is not None
    return 1 if failures else 0


def plain_outsider(data):
    """A server whose data plane is PLAIN: pulls without credentials, with a worker's name and
    wrong passwords (random Z85 text, and text that is not a key), and under a made-up name."""
    ctx = zmq.Context()
    pull = f_packed(2, [0]) + f_varint(1, 0)
    failures = 0
    for label, user, password in [
        ("pull without credentials", None, None),
        ("pull as worker-0 with a wrong key as password", b"worker-0", zmq.curve_keypair()[0]),
        ("pull as worker-0 with a password that is no key", b"worker-0", b"letmein"),
        ("pull as an unknown user", b"admin", zmq.curve_keypair()[0]),
    ]:
        s = ctx.socket(zmq.DEALER)
        s.linger, s.sndtimeo, s.identity = 0, 2000, b"worker-0"
        if user is not None:
            s.plain_username, s.plain_password = user, password
        s.connect(data)
        got = answer(s, 3000) if send(s, [envelope("", "worker-0", 1, 21, pull)]) else None
        print("%s: %s" % (label, "GOT %d frames" % len(got) if got else "no answer"))
        failures += got is not None
    return 1 if failures else 0


def insider(coordinator, keyfile):
    ctx = zmq.Context()
    public, secret = run_keys(keyfile)
    control = socket(ctx, coordinator, (public, secret), public, identity=b"worker-insider")
    data_keys = zmq.curve_keypair()
    control.send(envelope("", "worker-insider", 1, 10, hello(2, zmq.utils.z85.decode(data_keys[0]))))
    deadline = time.time() + 30
    welcome = None
    while time.time() < deadline and welcome is None:
        got = answer(control, 1000)
        if got:
            num, body, run_id = body_of(got[0])
            if num == 11:
                welcome = body
            elif num in (12, 14):
                print("refused before the run: %r" % body)
                return 1
    if welcome is None:
        print("never admitted")
        return 1
    index = welcome.get(1, [0])[0]
    chunks = [parse(c) for c in welcome.get(3, [])]
    owners = packed(welcome.get(4, []))
    endpoints = [e.decode() for e in welcome.get(5, [])]
    print("admitted as worker %d of run %r: %d chunks on %d servers" % (index, run_id, len(chunks), len(endpoints)))
    # Wait for the first work unit to learn the version.
    version = step = None
    while time.time() < deadline and version is None:
        got = answer(control, 1000)
        if got:
            num, body, _ = body_of(got[0])
            if num == 20:
                step, version = body.get(2, [0])[0], body.get(3, [0])[0]
    if version is None:
        print("no work unit")
        return 1
    mine = [i for i, o in enumerate(owners) if o == 0]
    counts = [chunks[i].get(3, [0])[0] for i in mine]
    data = socket(ctx, endpoints[0], data_keys, public, identity=("worker-%d" % index).encode())
    other = 1 - index if index <= 1 else 0
    zeros = [b"\0" * (4 * n) for n in counts]

    def push(worker, frames):
        msg = f_varint(1, step) + f_packed(2, mine) + f_varint(3, worker) + f_varint(4, version)
        data.send_multipart([envelope(run_id, "worker-%d" % index, 2, 23, msg)] + frames)
        got = answer(data, 5000)
        return body_of(got[0]) if got else (None, {}, "")

    num, body, _ = push(other, zeros)
    forged = num == 12 and body.get(1, [0])[0] == 403
    print("push claiming worker %d: %s" % (other, "refused (403)" if forged else "ACCEPTED %r" % (num,)))
    nan = struct.pack("<f", float("nan"))
    num, body, _ = push(index, [nan * n for n in counts])
    refused = num == 12 and body.get(1, [0])[0] == 422
    print("non-finite push as itself: %s" % ("refused (422)" if refused else "ACCEPTED %r" % (num,)))
    return 0 if forged and refused else 1


def join_as_worker(ctx, coordinator, keyfile):
    """Joins as a worker; returns (control, data socket, welcome facts, the first work unit)."""
    public, secret = run_keys(keyfile)
    control = socket(ctx, coordinator, (public, secret), public, identity=b"worker-insider")
    data_keys = zmq.curve_keypair()
    control.send(envelope("", "worker-insider", 1, 10, hello(2, zmq.utils.z85.decode(data_keys[0]))))
    deadline = time.time() + 30
    welcome = unit = None
    run_id = ""
    while time.time() < deadline and unit is None:
        got = answer(control, 300)
        if got:
            num, body, rid = body_of(got[0])
            if num == 11:
                welcome, run_id = body, rid
            elif num == 20:
                unit = body
            elif num in (12, 14):
                raise SystemExit("refused before the run: %r" % body)
        if welcome is not None:
            control.send(envelope(run_id, "worker-insider", 2, 13, b""))  # heartbeat
    if unit is None:
        raise SystemExit("never admitted or no work unit")
    index = welcome.get(1, [0])[0]
    chunks = [parse(c) for c in welcome.get(3, [])]
    owners = packed(welcome.get(4, []))
    endpoints = [e.decode() for e in welcome.get(5, [])]
    mine = [i for i, o in enumerate(owners) if o == 0]
    counts = [chunks[i].get(3, [0])[0] for i in mine]
    data = socket(ctx, endpoints[0], data_keys, public, identity=("worker-%d" % index).encode())
    facts = dict(index=index, run_id=run_id, mine=mine, counts=counts,
                 step=unit.get(2, [0])[0], version=unit.get(3, [0])[0], shard=unit.get(9, [0])[0],
                 ids=[parse(e).get(5, [0])[0] for e in unit.get(6, [])])
    print("admitted as worker %d of run %r; computes shard %d of step %d" % (index, run_id, facts["shard"], facts["step"] + 1))
    return control, data, facts


def push_shard(data, f, frames):
    """Pushes the shard a chunk per message, as workers do (a later shard's chunk is held
    until the earlier shards' arrive); returns the first answer that is not an ack, or the last."""
    result = (None, {}, "")
    for chunk, frame in zip(f["mine"], frames):
        msg = f_varint(1, f["step"]) + f_packed(2, [chunk]) + f_varint(3, f["shard"]) + f_varint(4, f["version"])
        data.send_multipart([envelope(f["run_id"], "worker-%d" % f["index"], 2, 23, msg), frame])
        got = answer(data, 10000)
        result = body_of(got[0]) if got else (None, {}, "")
        if result[0] != 24:
            return result
    return result


def heartbeat_for(control, f, seconds):
    """Keeps the slot alive for `seconds`; returns the number of a Shutdown/Error if one came."""
    end = time.time() + seconds
    while time.time() < end:
        control.send(envelope(f["run_id"], "worker-insider", 3, 13, f_varint(1, f["step"])))
        got = answer(control, 300)
        if got:
            num, body, _ = body_of(got[0])
            if num in (12, 14):
                return num
    return None


def report(control, f):
    msg = (f_varint(1, f["step"]) + f_varint(3, len(f["ids"])) + f_packed(10, f["ids"])
           + f_varint(11, f["version"]) + f_varint(12, f["shard"]))
    control.send(envelope(f["run_id"], "worker-insider", 4, 29, msg))


def insider_twice(coordinator, keyfile):
    ctx = zmq.Context()
    control, data, f = join_as_worker(ctx, coordinator, keyfile)
    num, body, _ = push_shard(data, f, [b"\0" * (4 * n) for n in f["counts"]])
    print("first push of shard %d: %s" % (f["shard"], "acknowledged" if num == 24 else "not acknowledged %r" % (num,)))
    heartbeat_for(control, f, 4)  # the honest worker pushes its shard meanwhile: the sum is complete
    one = struct.pack("<f", 1.0)
    num, body, _ = push_shard(data, f, [one * n for n in f["counts"]])
    refused = num == 12 and body.get(1, [0])[0] == 409
    print("second push of shard %d at the same version: %s" % (f["shard"], "refused (409)" if refused else "ACCEPTED %r" % (num,)))
    report(control, f)
    return 0 if refused else 1


def insider_silent(coordinator, keyfile):
    """Joins as a worker and heartbeats, but never pushes or reports; exits 0 when the
    coordinator drops it (a Shutdown), 1 after 60 s."""
    ctx = zmq.Context()
    control, data, f = join_as_worker(ctx, coordinator, keyfile)
    ended = heartbeat_for(control, f, 60)
    print("dropped by the coordinator" if ended else "never dropped")
    return 0 if ended else 1


def insider_absurd(coordinator, keyfile):
    ctx = zmq.Context()
    control, data, f = join_as_worker(ctx, coordinator, keyfile)
    big = struct.pack("<f", 1e30)
    num, body, _ = push_shard(data, f, [big * n for n in f["counts"]])
    print("absurd push of shard %d: %s" % (f["shard"], "acknowledged" if num == 24 else "answered %r" % (num,)))
    report(control, f)
    ended = heartbeat_for(control, f, 30)
    print("the run ended" if ended else "the run went on")
    return 0 if ended else 1


def rogue_data_server(coordinator, keyfile, mode):
    ctx = zmq.Context()
    public, secret = run_keys(keyfile)
    data = ctx.socket(zmq.ROUTER)
    data.linger = 0
    data.curve_server, data.curve_secretkey = True, secret
    data.bind("tcp://127.0.0.1:*")
    endpoint = data.getsockopt(zmq.LAST_ENDPOINT).decode()
    control = socket(ctx, coordinator, (public, secret), public, identity=b"server-rogue")
    control.send(envelope("", "server-rogue", 1, 10, f_varint(1, 1) + f_bytes(2, endpoint.encode()) + f_varint(4, PROTOCOL_VERSION)))
    weights, run_id, seq, deadline, bad, pushed = {}, "", 2, time.time() + 90, 0, set()
    poller = zmq.Poller()
    poller.register(control, zmq.POLLIN)
    poller.register(data, zmq.POLLIN)
    last_beat = 0
    while time.time() < deadline:
        if time.time() - last_beat > 0.2:
            control.send(envelope(run_id, "server-rogue", seq, 13, b""))
            seq, last_beat = seq + 1, time.time()
        ready = dict(poller.poll(100))
        if control in ready:
            got = control.recv_multipart()
            env = parse(got[0])
            if 11 in env:
                run_id = env.get(1, [b""])[0].decode()
                print("admitted as a server of run %r, data port %s" % (run_id, endpoint))
            elif 25 in env:  # load: keep the weights, acknowledge at the load's version
                load = parse(env[25][0])
                ids = packed(load.get(1, []))
                per = 3 if load.get(3, [0])[0] else 1
                for k, i in enumerate(ids):
                    weights[i] = got[1 + k * per]
                control.send(envelope(run_id, "server-rogue", seq, 28, f_varint(2, load.get(4, [0])[0])))
                seq += 1
            elif 30 in env:  # reset: acknowledge
                control.send(envelope(run_id, "server-rogue", seq, 28, f_varint(1, parse(env[30][0]).get(1, [0])[0])))
                seq += 1
            elif 31 in env:  # a snapshot command (this rogue is never asked for a replica back): acknowledge
                control.send(envelope(run_id, "server-rogue", seq, 28, f_varint(1, parse(env[31][0]).get(2, [0])[0])))
                seq += 1
            elif 21 in env:  # the coordinator's pull: the loaded weights, honestly (zeros for m and v)
                pull = parse(env[21][0])
                ids = packed(pull.get(2, []))
                per = 3 if pull.get(3, [0])[0] else 1
                frames = []
                for i in ids:
                    frames += [weights[i]] + [b"\0" * len(weights[i])] * (per - 1)
                reply = f_varint(1, pull.get(1, [0])[0]) + f_packed(2, ids) + f_varint(3, int(per == 3))
                control.send_multipart([envelope(run_id, "server-rogue", seq, 22, reply)] + frames)
                seq += 1
            elif 14 in env:
                print("the run ended; answered %d worker pulls with wrong sizes" % bad)
                return 0
        if data in ready:
            got = data.recv_multipart()
            peer, env = got[0], parse(got[1])
            if 21 in env and mode == "lying-norm":
                pull = parse(env[21][0])
                for i in packed(pull.get(2, [])):
                    reply = f_varint(1, pull.get(1, [0])[0]) + f_packed(2, [i])
                    data.send_multipart([peer, envelope(run_id, "server-rogue", seq, 22, reply), weights[i]])
                    seq += 1
            elif 23 in env:  # a push: acknowledge; once every chunk is in, report a lie
                push = parse(env[23][0])
                step = push.get(1, [0])[0]
                pushed.update(packed(push.get(2, [])))
                data.send_multipart([peer, envelope(run_id, "server-rogue", seq, 24, f_varint(1, step))])
                seq += 1
                if pushed >= set(weights):
                    mine = sorted(weights)
                    doubles = lambda xs: b"".join(struct.pack("<d", x) for x in xs)
                    norm = (f_varint(1, step) + f_packed(2, mine) + f_bytes(3, doubles([1e30] + [0.0] * (len(mine) - 1)))
                            + f_bytes(4, doubles([1.0])))
                    control.send(envelope(run_id, "server-rogue", seq, 26, norm))
                    seq += 1
                    print("reported a gradient norm of 1e15 with shard sums of 1")
                    pushed.clear()
            elif 21 in env:
                pull = parse(env[21][0])
                for i in packed(pull.get(2, [])):
                    reply = f_varint(1, pull.get(1, [0])[0]) + f_packed(2, [i])
                    data.send_multipart([peer, envelope(run_id, "server-rogue", seq, 22, reply), b"\0" * 8])
                    seq += 1
                bad += 1
                print("answered a worker's pull with 8-byte chunks")
    print("still running after 90 s")
    return 1


def rss_mib(pid):
    for line in open("/proc/%d/status" % pid):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def flood(data, pid, keyfile):
    import socket as so
    host, port = data[len("tcp://"):].rsplit(":", 1)
    before = rss_mib(pid)
    # ZMTP 3.0 greeting: signature, version 3.0, mechanism CURVE, as-server 0, filler.
    greeting = b"\xff" + b"\0" * 8 + b"\x7f" + b"\x03\x00" + b"CURVE".ljust(20, b"\0") + b"\0" + b"\0" * 31
    conns, sent = [], []
    for _ in range(3):
        c = so.create_connection((host, int(port)), timeout=5)
        c.sendall(greeting)
        c.recv(64)
        # A long command frame (flags 0x06) declaring 1 GiB, then its bytes.
        c.sendall(b"\x06" + struct.pack(">Q", 1 << 30))
        conns.append(c)
        sent.append(0)
    block = b"\0" * (1 << 20)
    for i, c in enumerate(conns):
        try:
            c.settimeout(2)
            while sent[i] < 256:
                c.sendall(block)
                sent[i] += 1
        except OSError:
            pass
    time.sleep(1)
    grown = rss_mib(pid) - before
    print("streamed %s MiB into 3 connections declaring 1 GiB frames; the server grew %.0f MiB" % (sent, grown))
    for c in conns:
        c.close()
    server_key = run_keys(keyfile)[0]
    ctx = zmq.Context()
    for _ in range(6):
        socks = []
        for _ in range(100):
            pub, sec = zmq.curve_keypair()
            s = ctx.socket(zmq.DEALER)
            s.linger = 0
            s.curve_publickey, s.curve_secretkey, s.curve_serverkey = pub, sec, server_key
            s.connect(data)
            socks.append(s)
        time.sleep(1.5)
        for s in socks:
            s.close()
    grown = max(grown, rss_mib(pid) - before)
    print("after 600 handshakes with unknown keys the server grew %.0f MiB" % grown)
    return 0 if grown < 64 else 1


def rogue_server(coordinator, keyfile, mode):
    """Holds the run key and joins as a server, then answers the coordinator's first pull
    with frames that do not match the plan: too small ("short") or twice too large ("long")."""
    ctx = zmq.Context()
    public, secret = run_keys(keyfile)
    control = socket(ctx, coordinator, (public, secret), public, identity=b"server-rogue")
    control.send(envelope("", "server-rogue", 1, 10, f_varint(1, 1) + f_bytes(2, b"tcp://127.0.0.1:1") + f_varint(4, PROTOCOL_VERSION)))
    deadline, run_id, chunks, seq = time.time() + 60, "", {}, 2
    silent = False
    while time.time() < deadline:
        got = answer(control, 200)
        if not got:
            control.send(envelope(run_id, "server-rogue", seq, 13, f_varint(1, 0)))  # heartbeat
            seq += 1
            continue
        num, body, rid = body_of(got[0])
        env = parse(got[0])
        if num == 11:
            run_id = rid
            for c in body.get(3, []):
                c = parse(c)
                chunks[c.get(1, [0])[0]] = c.get(3, [0])[0]
            print("admitted as a server of run %r with %d chunks" % (run_id, len(chunks)))
        elif 25 in env and mode == "silent-load":  # heartbeats go on, the load is never acknowledged
            if not silent:
                print("holding the load unacknowledged")
                silent = True
        elif 25 in env:  # load: acknowledge with an UpdateDone at the load's version
            load = parse(env[25][0])
            control.send(envelope(run_id, "server-rogue", seq, 28, f_varint(2, load.get(4, [0])[0])))
            seq += 1
        elif 21 in env:  # pull: answer with frames of the wrong size
            pull = parse(env[21][0])
            ids = packed(pull.get(2, []))
            per = 3 if pull.get(3, [0])[0] else 1
            frames = []
            for i in ids:
                n = chunks.get(i, 1) * 4
                frames += [b"\0" * (8 if mode == "short" else 2 * n)] * per
            reply = f_varint(1, pull.get(1, [0])[0]) + f_packed(2, ids) + f_varint(3, int(per == 3))
            control.send_multipart([envelope(run_id, "server-rogue", seq, 22, reply)] + frames)
            print("answered a pull of %d chunks with %s frames" % (len(ids), mode))
            time.sleep(1)  # let libzmq send it before the socket closes (linger is 0)
            return 0
        elif num == 14:
            print("the run ended before a pull")
            return 0 if silent else 1
    print("no pull within 60 s")
    return 1


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "outsider":
        sys.exit(outsider(sys.argv[2], sys.argv[3], sys.argv[4]))
    if mode == "plain-outsider":
        sys.exit(plain_outsider(sys.argv[2]))
    if mode == "insider-twice":
        sys.exit(insider_twice(sys.argv[2], sys.argv[3]))
    if mode == "flood":
        sys.exit(flood(sys.argv[2], int(sys.argv[3]), sys.argv[4]))
    if mode == "rogue-data-server":
        sys.exit(rogue_data_server(sys.argv[2], sys.argv[3], sys.argv[4]))
    if mode == "insider-silent":
        sys.exit(insider_silent(sys.argv[2], sys.argv[3]))
    if mode == "insider-absurd":
        sys.exit(insider_absurd(sys.argv[2], sys.argv[3]))
    if mode == "rogue-server":
        sys.exit(rogue_server(sys.argv[2], sys.argv[3], sys.argv[4]))
    sys.exit(insider(sys.argv[2], sys.argv[3]))
