#!/bin/sh
# Builds scripts/scripts.zip, the --py-files archive of the feature selection job, from
# scripts/src. The archive is byte-for-byte reproducible: entries sorted, fixed
# timestamps and permissions, no __pycache__, so a rebuild without source changes leaves
# the committed file untouched. Usage: scripts/build-py-files.sh [output.zip]
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-"$here/scripts.zip"}
python3 - "$here/src" "$out" <<'PY'
import os
import sys
import zipfile

src, out = sys.argv[1], sys.argv[2]
files = []
for root, dirs, names in os.walk(src):
    dirs[:] = sorted(d for d in dirs if d != "__pycache__" and not d.startswith("."))
    for name in names:
        if name.endswith(".py"):
            path = os.path.join(root, name)
            files.append(os.path.relpath(path, src).replace(os.sep, "/"))
if not files:
    sys.exit(f"no Python files under {src}")
tmp = out + ".tmp"
with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as z:
    for rel in sorted(files):
        info = zipfile.ZipInfo(rel, date_time=(1980, 1, 1, 0, 0, 0))
        info.compress_type = zipfile.ZIP_DEFLATED
        info.external_attr = 0o644 << 16
        info.create_system = 3
        with open(os.path.join(src, rel), "rb") as f:
            z.writestr(info, f.read())
os.replace(tmp, out)
print(f"{out}: {len(files)} files")
PY
