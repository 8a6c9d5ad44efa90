"""Cut envpool's wheels down to Atari and classic control, so they fit what a lent GPU machine carries.

envpool 1.2.5's wheel is 53 MB and envpool-assets 0.3.0's 62 MB (MuJoCo, gfootball, procgen, vizdoom
assets); a device call carries 64 MiB in all. This keeps what ``scripts/gpu_check.sh`` uses: the Atari
and classic-control pools (Pong for the PPO figure, CartPole for the env contract test), envpool's
Python layer and bundled libraries, and the Atari ROMs, and rewrites ``envpool/entry.py`` to register
only those. The ``RECORD`` of each wheel is rewritten with the kept files' hashes, so pip installs it
like the original (same name and version; ``--no-deps``, since the dropped asset wheels stay listed
as requirements).

    python scripts/cut_envpool_wheels.py WHEEL_DIR      # replaces envpool-*.whl and envpool_assets-*.whl
"""

from __future__ import annotations

import base64
import hashlib
import sys
import zipfile
from pathlib import Path

ENVPOOL_KEEP = (
    "envpool/__init__.py",
    "envpool/entry.py",
    "envpool/registration.py",
    "envpool/py.typed",
    "envpool/python/",
    "envpool/atari/",
    "envpool/classic_control/",
    "envpool.libs/",
)
ENTRY = (
    '"""Entry point for the envs kept by jaxrl\'s scripts/cut_envpool_wheels.py (Atari, classic control)."""\n\n'
    "import envpool.atari.registration  # noqa: F401\n"
    "import envpool.classic_control.registration  # noqa: F401\n"
)
ASSETS_KEEP = ("envpool_assets/__init__.py", "envpool_assets/atari/")


def _digest(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def cut(wheel: Path, keep: tuple[str, ...], replace: dict[str, bytes] | None = None) -> tuple[int, int]:
    """Rewrite ``wheel`` in place with only the members under ``keep`` (and its .dist-info); returns
    (bytes before, bytes after)."""
    replace = replace or {}
    before = wheel.stat().st_size
    tmp = wheel.with_suffix(".cut")
    with zipfile.ZipFile(wheel) as src:
        names = src.namelist()
        dist_info = next(n.split("/")[0] for n in names if n.split("/")[0].endswith(".dist-info"))
        record_name = f"{dist_info}/RECORD"
        kept = [
            n for n in names if n.startswith(keep) or (n.startswith(dist_info + "/") and n != record_name)
        ]
        missing = [k for k in keep if k.endswith("/") and not any(n.startswith(k) for n in names)]
        if missing:
            raise SystemExit(f"{wheel.name} has none of {missing}: not the wheel this script was written for")
        rows = []
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as dst:
            for name in kept:
                info = src.getinfo(name)
                data = replace.get(name, src.read(name))
                dst.writestr(info, data, compress_type=zipfile.ZIP_DEFLATED)
                rows.append(f"{name},{_digest(data)},{len(data)}")
            rows.append(f"{record_name},,")
            dst.writestr(record_name, "\n".join(rows) + "\n")
    tmp.replace(wheel)
    return before, wheel.stat().st_size


def main() -> None:
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    d = Path(sys.argv[1])
    jobs = [
        ("envpool-*.whl", ENVPOOL_KEEP, {"envpool/entry.py": ENTRY.encode()}),
        ("envpool_assets-*.whl", ASSETS_KEEP, None),
    ]
    for pattern, keep, replace in jobs:
        wheels = sorted(d.glob(pattern))
        if len(wheels) != 1:
            raise SystemExit(f"expected one {pattern} in {d}, found {[w.name for w in wheels]}")
        before, after = cut(wheels[0], keep, replace)
        print(f"{wheels[0].name}: {before / 2**20:.1f} MiB -> {after / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
