#!/usr/bin/env python3
"""Sets one field of a checkpoint's trainer_state.json and rewrites its manifest.json with
hashlib's SHA-256, as a user (or a bug) that edits a checkpoint consistently would: the
manifest then verifies, and the field itself must be validated.
  edit_checkpoint.py CHECKPOINT_DIR FIELD JSON_VALUE
"""
import hashlib
import json
import os
import sys

directory, field, value = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
state_path = os.path.join(directory, "trainer_state.json")
state = json.load(open(state_path))
state[field] = value
json.dump(state, open(state_path, "w"), indent=2, sort_keys=True)
manifest_path = os.path.join(directory, "manifest.json")
manifest = json.load(open(manifest_path))
for name in manifest["files"]:
    data = open(os.path.join(directory, name), "rb").read()
    manifest["files"][name] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
json.dump(manifest, open(manifest_path, "w"), indent=2, sort_keys=True)
print("set %s = %r in %s and rehashed %d files" % (field, value, state_path, len(manifest["files"])))
