#!/usr/bin/env python3
"""Checks that a .deb declares every shared library its programs load.

For each ELF program under usr/bin and usr/lib/spool in the package, every NEEDED library is
resolved on this machine (ldconfig), mapped to the Debian package that ships
it (dpkg -S), and looked up in the closure of the package's Depends (apt-cache
depends --recurse): a library whose package is neither declared nor pulled in
by a declared one would be missing on a fresh machine after `apt install`.
Exits 1 naming what is missing. Used by scripts/dist.sh on the build machine.
"""

import re
import subprocess
import sys
import tempfile
from pathlib import Path


def run(*cmd: str) -> str:
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout


def needed(elf: Path) -> list[str]:
    out = run("readelf", "-d", str(elf))
    return re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", out)


def library_paths() -> dict[str, str]:
    paths: dict[str, str] = {}
    for line in run("ldconfig", "-p").splitlines()[1:]:
        m = re.match(r"\s*(\S+) \(([^)]*)\) => (\S+)", line)
        if m and "x86-64" in m.group(2):
            paths.setdefault(m.group(1), m.group(3))
    return paths


def owner(path: str) -> str | None:
    for candidate in (path, str(Path(path).resolve())):
        r = subprocess.run(["dpkg", "-S", candidate], capture_output=True, text=True)
        if r.returncode == 0:
            return r.stdout.split(":", 1)[0].split(",")[0].strip()
        # /lib is a symlink to /usr/lib on merged-/usr systems: dpkg knows one.
        alt = candidate.replace("/usr/lib/", "/lib/", 1) if candidate.startswith("/usr/lib/") else candidate.replace("/lib/", "/usr/lib/", 1)
        r = subprocess.run(["dpkg", "-S", alt], capture_output=True, text=True)
        if r.returncode == 0:
            return r.stdout.split(":", 1)[0].split(",")[0].strip()
    return None


def depends_closure(depends: str) -> set[str]:
    names = set()
    for alt in depends.split(","):
        for choice in alt.split("|"):
            name = choice.strip().split(" ")[0].split("(")[0].strip()
            if name:
                names.add(name)
    if not names:
        return set()
    out = run(
        "apt-cache", "depends", "--recurse", "--no-recommends", "--no-suggests",
        "--no-conflicts", "--no-breaks", "--no-replaces", "--no-enhances", *sorted(names),
    )
    # --recurse lists every package it reaches on a line of its own (its
    # dependencies indented under it): those lines are the closure.
    closure = set(names)
    for line in out.splitlines():
        if line and not line[0].isspace():
            closure.add(line.strip().strip("<>").split(":")[0])
    return closure


def main() -> int:
    deb = sys.argv[1]
    depends = run("dpkg-deb", "-f", deb, "Depends").strip()
    closure = depends_closure(depends)
    libs = library_paths()
    missing: dict[str, list[str]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        run("dpkg-deb", "-x", deb, tmp)
        dirs = [Path(tmp) / "usr" / "bin", Path(tmp) / "usr" / "lib" / "spool"]
        programs = [
            p for d in dirs if d.is_dir() for p in d.iterdir() if p.is_file() and p.read_bytes()[:4] == b"\x7fELF"
        ]
        if not programs:
            print(f"{deb}: no programs under usr/bin", file=sys.stderr)
            return 1
        for prog in programs:
            for lib in needed(prog):
                path = libs.get(lib)
                if path is None:
                    missing.setdefault(f"(not on this machine) {lib}", []).append(prog.name)
                    continue
                pkg = owner(path)
                # libc6 is essential; its libraries need no declaration.
                if pkg is None or pkg in closure or pkg == "libc6":
                    continue
                missing.setdefault(pkg, []).append(f"{prog.name}: {lib}")
    if missing:
        for pkg, why in sorted(missing.items()):
            print(f"{deb}: Depends lacks {pkg} ({', '.join(sorted(set(why)))})", file=sys.stderr)
        return 1
    print(f"{Path(deb).name}: every library of {', '.join(p.name for p in programs)} is declared")
    return 0


if __name__ == "__main__":
    sys.exit(main())
