"""Reads a run's TensorBoard events with TensorBoard's own loader and checks them against
metrics.jsonl: every record's CRCs (TensorBoard's masked_crc32c), one file-version event,
and for every step line of metrics.jsonl a scalar STAGE/NAME at that step with the same
value (to float32), each (tag, step) exactly once.
    python3 check_tensorboard.py OUTPUT_DIR
Prints "ok: N scalars in M events" or exits 1 naming the first difference."""
import glob
import json
import math
import struct
import sys

from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import masked_crc32c


def check_records(path):
    data = open(path, "rb").read()
    i = n = 0
    while i < len(data):
        if i + 12 > len(data):
            sys.exit("%s: truncated record header at byte %d" % (path, i))
        header = data[i:i + 8]
        (length,) = struct.unpack("<Q", header)
        (crc,) = struct.unpack("<I", data[i + 8:i + 12])
        if crc != masked_crc32c(header):
            sys.exit("%s: bad length CRC at byte %d" % (path, i))
        payload = data[i + 12:i + 12 + length]
        (crc,) = struct.unpack("<I", data[i + 12 + length:i + 16 + length])
        if len(payload) != length or crc != masked_crc32c(payload):
            sys.exit("%s: bad payload CRC at byte %d" % (path, i))
        i += 16 + length
        n += 1
    return n


def main(out):
    files = sorted(glob.glob(out + "/tensorboard/events.out.tfevents.*"))
    if not files:
        sys.exit("no event file under %s/tensorboard" % out)
    seen = {}
    events = versions = 0
    for path in files:
        check_records(path)
        for event in EventFileLoader(path).Load():
            events += 1
            if event.file_version:
                versions += 1
                continue
            for value in event.summary.value:
                key = (value.tag, event.step)
                if key in seen:
                    sys.exit("%s at step %d appears twice" % key)
                # TensorBoard's loader turns simple_value into a scalar tensor.
                seen[key] = value.simple_value if value.HasField("simple_value") else value.tensor.float_val[0]
    if versions != len(files):
        sys.exit("expected one file_version event per file, got %d in %d files" % (versions, len(files)))
    expected = 0
    for line in open(out + "/metrics.jsonl"):
        record = json.loads(line)
        if "step" not in record:
            continue
        for name, value in record.items():
            if name in ("stage", "step", "epoch") or value is None:
                continue
            expected += 1
            key = ("%s/%s" % (record["stage"], name), record["step"])
            if key not in seen:
                sys.exit("%s at step %d is in metrics.jsonl but not in the events" % key)
            if not math.isclose(seen[key], value, rel_tol=1e-6, abs_tol=1e-30):
                sys.exit("%s at step %d: events %r, metrics.jsonl %r" % (key[0], key[1], seen[key], value))
    if expected == 0:
        sys.exit("metrics.jsonl has no step lines")
    print("ok: %d scalars in %d events (%d files)" % (len(seen), events, len(files)))


if __name__ == "__main__":
    main(sys.argv[1])
