#!/usr/bin/env python3
"""An Arch-sized synthetic mirror for the `--scale` benchmarks (benches/scale.py).

Three repos with Arch's real sizes — `core` ~270, `extra` ~14,000, `multilib` ~280 packages —
in three revisions, every database (`.db` and `.files`) made by the real `repo-add`:

* `old`  - "this week": every package at its first version;
* `next` - "next week": `bumped` (~300) packages at a new version, tiny payloads (db-scale
           figures: refresh, prefetch plan, verify);
* `lan`  - the same bump with real payloads: sizes drawn from a long-tailed distribution (most
           under 1 MiB, a tail up to a few hundred MiB) scaled to `lan_payload` bytes in total
           (default 1 GiB unique), for the LAN upgrade day. Made only when asked for.

Packages are valid `.pkg.tar.zst` archives written directly (a `.PKGINFO`, then the package's
files; made with Python's tarfile + the `zstd` tool), because making 15,000 packages with
makepkg would take hours. Each package's file list is realistic in shape (long-tailed count,
Arch-like paths), so `extra.files` has the size of the real one (tens of MiB). Packages carry a
detached `.sig` (random bytes of an RSA-4096 signature's size, which pacman 6.0's repo-add
base64s into `%PGPSIG%` - why the real `extra.db` is ~8 MiB). `depend=` entries point only at
`core` packages of lower index, so every dependency closure is installable.

Generation is slow once (repo-add spawns a dozen processes per package: ~10-30 minutes for
`extra` on a busy 2-core machine) and cached on disk: `<base>/arch-v<N>-<hash of parameters>/`
with a stamp per stage, reused by every later run. `base` defaults to `<repo>/target/bench-fixtures`
(run.sh: `--fixtures DIR` or `PKGSTASH_BENCH_FIXTURES`).

Layout of a fixture:
    spec.json                         every package: repo, name, arch, versions, file names
    pool/<rev>/<repo>/                the package files (+ .sig) made for that revision
    tree/<rev>/<repo>/os/x86_64/      the mirror tree of a revision: hard links into pool/ +
                                      <repo>.db(.tar.gz) and <repo>.files(.tar.gz) by repo-add
Database mtimes are fixed (`old`: 2026-01-01, `next`/`lan`: one week later), so a proxy that
cached `old` revalidates with If-Modified-Since and gets the new one.

CLI (normally driven by scale.py):
    archgen.py [--base DIR] [--scale 0.05] [--lan] [--lan-payload-mib 1024]
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import hashlib
import io
import json
import math
import os
import random
import shutil
import subprocess
import sys
import tarfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

GEN_VERSION = 1
MiB = 1 << 20
ARCH = "x86_64"
REPOS = ("core", "extra", "multilib")
REVS = ("old", "next", "lan")
OLD_MTIME = 1767225600  # 2026-01-01T00:00:00Z
NEXT_MTIME = OLD_MTIME + 7 * 86400
BUILDDATE = OLD_MTIME - 86400
SIG_BYTES = 566  # an RSA-4096 detached signature (most Arch packagers' keys)


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] archgen: {msg}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Params:
    seed: int = 21
    core: int = 270
    extra: int = 14_000
    multilib: int = 280
    bumped: int = 300
    # Files per package: log-normal (median, sigma), capped. Mean ~ 250 -> extra.files ~ tens
    # of MiB, like Arch's.
    files_median: float = 60.0
    files_sigma: float = 1.7
    files_max: int = 30_000
    # Package (download) sizes: log-normal (median, sigma) in bytes, capped.
    size_median: float = 256 * 1024
    size_sigma: float = 2.6
    size_max: int = 320 * MiB
    lan_payload: int = 1024 * MiB

    def counts(self) -> dict[str, int]:
        return {"core": self.core, "extra": self.extra, "multilib": self.multilib}

    def scaled(self, f: float) -> "Params":
        """Smaller counts (quick validation runs), same shapes."""
        d = asdict(self)
        for k in ("core", "extra", "multilib", "bumped"):
            d[k] = max(4, int(round(d[k] * f)))
        d["lan_payload"] = max(8 * MiB, int(d["lan_payload"] * f))
        return Params(**d)

    def key(self) -> str:
        # lan_payload is not part of the key of the base stages; the lan stage has its own
        # stamp that records it.
        d = asdict(self)
        d.pop("lan_payload")
        d["gen"] = GEN_VERSION
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:12]


# ---------------------------------------------------------------- the catalog (names, versions)

SYL = ("ba be bi bo bu da de di do du fa fe fi fo ga ge gi go ka ke ki ko ku la le li lo lu "
       "ma me mi mo mu na ne ni no nu pa pe pi po pu ra re ri ro ru sa se si so su ta te ti "
       "to tu va ve vi vo xa xe xi za ze zi zo ar er ir or ur an en in on un al el il ol ex "
       "ix ox qu th st tr pl gr cl fl sp sk").split()
PREFIXES = [("", 40), ("lib", 10), ("python-", 16), ("perl-", 6), ("haskell-", 5),
            ("ruby-", 2), ("rust-", 1), ("go-", 1), ("nodejs-", 2), ("ttf-", 1),
            ("qt6-", 1), ("kde-", 3), ("gnome-", 2), ("xorg-", 1), ("texlive-", 1),
            ("ocaml-", 1), ("r-", 4), ("java-", 1), ("lua-", 1)]
SUFFIXES = ["", "", "", "", "", "", "-utils", "-docs", "-git", "-tools", "-data", "-cli",
            "-common", "-server", "-plugins"]
LICENSES = ["GPL-2.0-or-later", "GPL-3.0-or-later", "MIT", "BSD-3-Clause", "Apache-2.0",
            "LGPL-2.1-or-later", "MPL-2.0", "custom"]
WORDS = ("fast small simple modern secure portable generic extensible lightweight library "
         "tool daemon utility toolkit bindings framework parser compiler viewer editor "
         "server client driver plugin backend frontend interface for the and of with a "
         "data files images audio video network graphics terminal console desktop").split()


def word(rng: random.Random, n: int) -> str:
    return "".join(rng.choice(SYL) for _ in range(n))


def lognormal(rng: random.Random, median: float, sigma: float) -> float:
    return median * math.exp(rng.gauss(0.0, sigma))


@dataclass
class Pkg:
    repo: str
    idx: int
    name: str
    arch: str
    old: str  # version
    new: str | None  # version in next/lan, when bumped
    isize: int  # nominal installed size (bytes)
    nfiles: int
    lan_size: int = 0  # target download size of the bumped version in `lan`
    depends: tuple[str, ...] = ()
    optdepends: tuple[str, ...] = ()
    makedepends: tuple[str, ...] = ()
    desc: str = ""
    license: str = "MIT"

    def filename(self, version: str) -> str:
        return f"{self.name}-{version}-{self.arch}.pkg.tar.zst"

    def version(self, rev: str) -> str:
        return self.new if (rev != "old" and self.new) else self.old


def make_catalog(p: Params) -> list[Pkg]:
    rng = random.Random(p.seed)
    names: set[str] = set()
    name_list: list[str] = []
    prefixes = [x for x, _ in PREFIXES]
    weights = [w for _, w in PREFIXES]
    out: list[Pkg] = []
    core_names: list[str] = []
    for repo in REPOS:
        for i in range(p.counts()[repo]):
            while True:
                if repo == "multilib":
                    base = "lib32-" + rng.choice(["", "lib"]) + word(rng, rng.randint(2, 4))
                else:
                    base = rng.choices(prefixes, weights)[0] + word(rng, rng.randint(2, 4))
                    base += rng.choice(SUFFIXES)
                if base not in names:
                    names.add(base)
                    name_list.append(base)
                    break
            a, b, c = rng.randint(0, 30), rng.randint(0, 40), rng.randint(0, 20)
            ver = f"{a}.{b}.{c}-{rng.randint(1, 4)}"
            if rng.random() < 0.03:
                ver = f"{rng.randint(1, 3)}:{ver}"
            arch = "any" if (repo == "extra" and rng.random() < 0.25) else ARCH
            isize = int(min(p.size_max * 3, lognormal(rng, p.size_median * 3, p.size_sigma)))
            nfiles = int(min(p.files_max, max(1, lognormal(rng, p.files_median, p.files_sigma))))
            pool = core_names if repo != "core" else core_names[:i]
            deps = tuple(sorted(set(rng.sample(pool, min(len(pool), rng.randint(0, 6))))))
            opt = tuple(f"{n}: {rng.choice(WORDS)} support" for n in
                        rng.sample(name_list, min(len(name_list), rng.randint(0, 3))))
            mk = tuple(rng.sample(name_list, min(len(name_list), rng.randint(0, 4))))
            desc = " ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 12))).capitalize()
            pkg = Pkg(repo, i, base, arch, ver, None, isize, nfiles, depends=deps,
                      optdepends=opt, makedepends=mk, desc=desc, license=rng.choice(LICENSES))
            out.append(pkg)
            if repo == "core":
                core_names.append(base)
    # The bump: ~3 % of core and multilib, the rest in extra (Arch's mix in a busy week).
    per_repo = {r: [x for x in out if x.repo == r] for r in REPOS}
    n_small = max(1, round(p.bumped * 0.03))
    chosen = (rng.sample(per_repo["core"], min(n_small, len(per_repo["core"])))
              + rng.sample(per_repo["multilib"], min(n_small, len(per_repo["multilib"]))))
    chosen += rng.sample(per_repo["extra"], p.bumped - len(chosen))
    for pkg in chosen:
        epoch, _, rest = pkg.old.rpartition(":")
        pkgver, rel = rest.rsplit("-", 1)
        if rng.random() < 0.5:
            new = f"{pkgver}-{int(rel) + 1}"
        else:
            parts = pkgver.split(".")
            parts[-1] = str(int(parts[-1]) + 1)
            new = f"{'.'.join(parts)}-1"
        pkg.new = f"{epoch}:{new}" if epoch else new
    # Download sizes of the bumped versions for the LAN day: long-tailed, scaled to the total.
    # The biggest is a quarter of the total (256 MiB of the default 1 GiB: a linux-firmware
    # or an nvidia-utils), the others scaled to the rest.
    bumped = [x for x in out if x.new]
    sizes = [lognormal(rng, p.size_median, p.size_sigma) for _ in bumped]
    top = max(range(len(sizes)), key=sizes.__getitem__)
    big = min(p.size_max, p.lan_payload / 4)
    rest = p.lan_payload - big
    for _ in range(20):
        f = rest / (sum(sizes) - sizes[top])
        sizes = [min(big, max(4096.0, s * f)) for s in sizes]
        sizes[top] = big
        if abs(sum(sizes) - p.lan_payload) < p.lan_payload * 0.002:
            break
    for pkg, s in zip(bumped, sizes):
        pkg.lan_size = int(s)
    return out


# ---------------------------------------------------------------- package archives

EXTS = {"py": 0.6, "pyc": 0.0, "h": 0.1, "so": 0.05, "mo": 0.05, "html": 0.1, "png": 0.1}


def file_list(pkg: Pkg, rng: random.Random, nfiles: int) -> list[str]:
    """Arch-like paths for a package's files."""
    n = pkg.name
    mod = n.split("-", 1)[-1].replace("-", "_")
    files: list[str] = []
    if n.startswith("python-"):
        root = f"usr/lib/python3.12/site-packages/{mod}"
        subs = [root] + [f"{root}/{word(rng, 2)}" for _ in range(max(1, nfiles // 40))]
        for i in range(nfiles):
            d = subs[i % len(subs)]
            files.append(f"{d}/__pycache__/{word(rng, 2)}{i}.cpython-312.pyc" if i % 2
                         else f"{d}/{word(rng, 2)}{i}.py")
    elif n.startswith("perl-"):
        root = "usr/share/perl5/vendor_perl/" + "/".join(x.capitalize() for x in mod.split("_"))
        for i in range(nfiles):
            files.append(f"{root}/{word(rng, 2).capitalize()}{i}.pm" if i % 3
                         else f"usr/share/man/man3/{mod}::{word(rng, 2)}{i}.3pm.gz")
    elif n.startswith("haskell-"):
        root = f"usr/lib/ghc-9.4.8/site-local/{mod}-1.0"
        for i in range(nfiles):
            files.append(f"{root}/{word(rng, 2).capitalize()}/{word(rng, 2)}{i}."
                         + ("dyn_hi" if i % 2 else "hi"))
    elif n.startswith("lib") and not n.startswith("lib32-"):
        for i in range(nfiles):
            k = i % 4
            files.append(f"usr/include/{mod}/{word(rng, 2)}{i}.h" if k < 2 else
                         f"usr/lib/{n}.so.{i}" if k == 2 else
                         f"usr/share/doc/{n}/html/{word(rng, 2)}{i}.html")
    elif n.startswith("lib32-"):
        for i in range(nfiles):
            files.append(f"usr/lib32/{mod}{i}.so" if i % 2 else f"usr/lib32/{mod}/{word(rng, 2)}{i}.so")
    else:
        for i in range(nfiles):
            k = i % 10
            if k == 0:
                files.append(f"usr/bin/{n}{'' if i == 0 else '-' + word(rng, 2) + str(i)}")
            elif k in (1, 2):
                files.append(f"usr/share/locale/{rng.choice(['de', 'fr', 'es', 'it', 'ja', 'pt_BR', 'ru', 'zh_CN', 'pl', 'nl'])}/LC_MESSAGES/{n}{i}.mo")
            elif k == 3:
                files.append(f"usr/share/man/man1/{n}-{word(rng, 2)}{i}.1.gz")
            elif k in (4, 5):
                files.append(f"usr/share/{n}/{word(rng, 2)}/{word(rng, 3)}{i}.{rng.choice(['png', 'svg', 'xml', 'json', 'txt'])}")
            elif k in (6, 7):
                files.append(f"usr/lib/{n}/{word(rng, 2)}{i}.so")
            else:
                files.append(f"usr/share/doc/{n}/{word(rng, 2)}{i}.html")
    files.append(f"usr/share/licenses/{n}/LICENSE")
    return sorted(set(files))


def pkginfo(pkg: Pkg, version: str, isize: int) -> bytes:
    lines = [
        "# Generated by makepkg 6.0.2 (pkgstash benches/archgen.py)",
        f"pkgname = {pkg.name}", f"pkgbase = {pkg.name}", "xdata = pkgtype=pkg",
        f"pkgver = {version}", f"pkgdesc = {pkg.desc}",
        f"url = https://example.org/{pkg.name}", f"builddate = {BUILDDATE}",
        "packager = Synthetic Packager <packager@example.org>", f"size = {isize}",
        f"arch = {pkg.arch}", f"license = {pkg.license}",
    ]
    lines += [f"depend = {d}" for d in pkg.depends]
    lines += [f"optdepend = {d}" for d in pkg.optdepends]
    lines += [f"makedepend = {d}" for d in pkg.makedepends]
    return ("\n".join(lines) + "\n").encode()


class RandomReader:
    """A file-like object of `n` pseudo-random bytes (incompressible payload)."""

    def __init__(self, n: int, seed: int):
        self.left = n
        self.rng = random.Random(seed)

    def read(self, size: int = -1) -> bytes:
        if size < 0 or size > self.left:
            size = self.left
        self.left -= size
        return self.rng.randbytes(size)


def write_tar(out: Path, pkg: Pkg, version: str, files: list[str], payload: int, seed: int) -> None:
    """An uncompressed package tar: .PKGINFO first (as makepkg writes it), then dirs and files."""
    dirs: set[str] = set()
    for f in files:
        parts = f.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            dirs.add("/".join(parts[:i]))
    payload_path = f"usr/share/{pkg.name}/payload.bin" if payload else None
    if payload_path:
        dirs.update({"usr", "usr/share", f"usr/share/{pkg.name}"})
    with tarfile.open(out, "w", format=tarfile.GNU_FORMAT) as tf:
        def add(name: str, data: bytes | None = None, mode: int = 0o644, size: int = 0,
                fileobj=None, kind=tarfile.REGTYPE) -> None:
            ti = tarfile.TarInfo(name)
            ti.mtime, ti.uid, ti.gid, ti.uname, ti.gname = BUILDDATE, 0, 0, "root", "root"
            ti.mode, ti.type = mode, kind
            if data is not None:
                ti.size = len(data)
                tf.addfile(ti, io.BytesIO(data))
            elif fileobj is not None:
                ti.size = size
                tf.addfile(ti, fileobj)
            else:
                tf.addfile(ti)
        isize = pkg.isize if not payload else max(pkg.isize, payload)
        add(".PKGINFO", pkginfo(pkg, version, isize))
        for d in sorted(dirs):
            add(d, mode=0o755, kind=tarfile.DIRTYPE)
        for f in files:
            add(f, b"", mode=0o755 if f.startswith("usr/bin/") else 0o644)
        if payload_path:
            add(payload_path, size=payload, fileobj=RandomReader(payload, seed))


def build_batch(args) -> list[str]:
    """Worker: write the tars of a batch, compress them with one zstd process, add .sig files."""
    outdir, jobs = args
    outdir = Path(outdir)
    tars = []
    for name, version, files, payload, seed in jobs:
        pkg = Pkg(**name)
        fn = pkg.filename(version)
        tar_path = outdir / fn[: -len(".zst")]
        write_tar(tar_path, pkg, version, files, payload, seed)
        tars.append(tar_path)
        (outdir / f"{fn}.sig").write_bytes(random.Random(seed ^ 0x5157).randbytes(SIG_BYTES))
    # One zstd for the whole batch (-1: what matters is a valid archive, not its ratio).
    subprocess.run(["zstd", "-q", "-1", "-T1", "--rm", "-f", *map(str, tars)], check=True)
    return [t.name + ".zst" for t in tars]


def pkg_dict(pkg: Pkg) -> dict:
    return asdict(pkg)


# ---------------------------------------------------------------- the fixture

class Fixture:
    def __init__(self, base: Path, params: Params):
        self.params = params
        self.dir = base / f"arch-v{GEN_VERSION}-{params.key()}"
        self.pkgs: list[Pkg] = []

    def tree(self, rev: str, repo: str | None = None) -> Path:
        t = self.dir / "tree" / rev
        return t / repo / "os" / ARCH if repo else t

    def pool(self, rev: str, repo: str) -> Path:
        return self.dir / "pool" / rev / repo

    def stamp(self, stage: str) -> Path:
        return self.dir / f"DONE-{stage}"

    def ready(self, lan: bool) -> bool:
        return self.stamp("next").exists() and (not lan or self.lan_stamp_ok())

    def lan_stamp_ok(self) -> bool:
        s = self.stamp("lan")
        return s.exists() and json.loads(s.read_text()).get("lan_payload") == self.params.lan_payload

    def load(self) -> None:
        spec = json.loads((self.dir / "spec.json").read_text())
        self.pkgs = [Pkg(**{**d, "depends": tuple(d["depends"]), "optdepends": tuple(d["optdepends"]),
                            "makedepends": tuple(d["makedepends"])}) for d in spec["packages"]]
        # lan sizes depend on lan_payload: recomputed, not stored
        fresh = {(p.repo, p.name): p.lan_size for p in make_catalog(self.params)}
        for p in self.pkgs:
            p.lan_size = fresh[(p.repo, p.name)]

    def ensure(self, lan: bool) -> "Fixture":
        """Make what is missing (one generator at a time: a lock file in the fixture dir)."""
        import fcntl
        self.dir.mkdir(parents=True, exist_ok=True)
        with open(self.dir / ".lock", "w") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                log(f"waiting for another generator of {self.dir}")
                fcntl.flock(lock, fcntl.LOCK_EX)
            return self._ensure(lan)

    def _ensure(self, lan: bool) -> "Fixture":
        t0 = time.monotonic()
        if not self.stamp("old").exists():
            self.pkgs = make_catalog(self.params)
            (self.dir / "spec.json").write_text(json.dumps(
                {"params": asdict(self.params), "packages": [pkg_dict(p) for p in self.pkgs]}))
            log(f"generating {len(self.pkgs)} packages (revision old) in {self.dir}")
            self.build_rev("old")
            self.stamp("old").write_text("ok\n")
        self.load()
        if not self.stamp("next").exists():
            log("revision next (bumped packages, tiny payloads)")
            self.build_rev("next")
            self.stamp("next").write_text("ok\n")
        if lan and not self.lan_stamp_ok():
            log(f"revision lan (bumped packages, {self.params.lan_payload / MiB:.0f} MiB of payload)")
            self.build_rev("lan")
            self.stamp("lan").write_text(json.dumps({"lan_payload": self.params.lan_payload}) + "\n")
        if time.monotonic() - t0 > 1:
            log(f"fixture ready in {time.monotonic() - t0:.0f}s: {self.dir}")
        return self

    def build_rev(self, rev: str) -> None:
        """Make the package files of `rev`, its tree (hard links) and its dbs (repo-add)."""
        tree = self.tree(rev)
        if tree.exists():
            shutil.rmtree(tree)
        for repo in REPOS:
            pool = self.pool(rev, repo)
            if pool.exists():
                shutil.rmtree(pool)
            pool.mkdir(parents=True)
        # 1. package files of this revision
        jobs: dict[str, list] = {r: [] for r in REPOS}
        for p in self.pkgs:
            if rev == "old" or p.new:
                version = p.version(rev)
                seed = hash_seed(self.params.seed, p.name, version, rev)
                rng = random.Random(seed)
                lan = rev == "lan"
                # LAN-day packages: a few files + the payload (installing them is the clients'
                # work, not the proxy's); the others: the full, realistic file list.
                files = file_list(p, rng, min(p.nfiles, 12) if lan else p.nfiles)
                payload = max(0, p.lan_size - 4096) if lan else 0
                jobs[p.repo].append((asdict(p), version, files, payload, seed))
        batches = []
        for repo, js in jobs.items():
            # Big payloads alone, small packages in batches of ~200.
            small = [j for j in js if j[3] < 8 * MiB]
            big = [j for j in js if j[3] >= 8 * MiB]
            for i in range(0, len(small), 200):
                batches.append((str(self.pool(rev, repo)), small[i:i + 200]))
            for j in big:
                batches.append((str(self.pool(rev, repo)), [j]))
        t = time.monotonic()
        done = 0
        with cf.ProcessPoolExecutor(max(1, min(2, os.cpu_count() or 1))) as ex:
            for names in ex.map(build_batch, batches):
                done += len(names)
        log(f"  {rev}: {done} package files in {time.monotonic() - t:.0f}s")
        # 2. the tree: every current package of the revision, hard links into pool/
        for repo in REPOS:
            d = self.tree(rev, repo)
            d.mkdir(parents=True)
            for p in (x for x in self.pkgs if x.repo == repo):
                v = p.version(rev)
                src_rev = rev if (rev != "old" and p.new) else "old"
                fn = p.filename(v)
                for f in (fn, fn + ".sig"):
                    os.link(self.pool(src_rev, repo) / f, d / f)
        # 3. dbs: `old` from scratch; next/lan: old's dbs + repo-add of the bumped packages
        t = time.monotonic()

        def dbs(repo: str) -> None:
            d = self.tree(rev, repo)
            if rev == "old":
                names = [p.filename(p.old) for p in self.pkgs if p.repo == repo]
            else:
                for kind in ("db", "files"):
                    src = self.tree("old", repo) / f"{repo}.{kind}.tar.gz"
                    shutil.copyfile(src, d / src.name)
                names = [p.filename(p.new) for p in self.pkgs if p.repo == repo and p.new]
            for i in range(0, len(names), 1000):
                r = subprocess.run(["repo-add", "-q", "--nocolor", f"{repo}.db.tar.gz",
                                    *names[i:i + 1000]], cwd=d, capture_output=True, text=True)
                if r.returncode != 0:
                    raise RuntimeError(f"repo-add {repo} ({rev}) failed:\n{r.stderr[-3000:]}")
            for old in d.glob("*.old"):  # repo-add's backups of the previous dbs
                old.unlink()
            for kind in ("db", "files"):
                link = d / f"{repo}.{kind}"
                if not link.is_symlink():
                    if link.exists():
                        link.unlink()
                    link.symlink_to(f"{repo}.{kind}.tar.gz")
                mt = OLD_MTIME if rev == "old" else NEXT_MTIME
                os.utime(d / f"{repo}.{kind}.tar.gz", (mt, mt))

        with cf.ThreadPoolExecutor(3) as ex:
            list(ex.map(dbs, REPOS))
        sizes = {r: {k: (self.tree(rev, r) / f"{r}.{k}.tar.gz").stat().st_size
                     for k in ("db", "files")} for r in REPOS}
        log(f"  {rev}: repo-add done in {time.monotonic() - t:.0f}s; sizes "
            + ", ".join(f"{r}.db {s['db'] / MiB:.1f} MiB / {r}.files {s['files'] / MiB:.1f} MiB"
                        for r, s in sizes.items()))

    # -- facts for the benchmarks
    def bumped(self) -> list[Pkg]:
        return [p for p in self.pkgs if p.new]

    def file_size(self, rev: str, p: Pkg) -> int:
        return (self.tree(rev, p.repo) / p.filename(p.version(rev))).stat().st_size

    def db_path(self, rev: str, repo: str, kind: str = "db") -> Path:
        return self.tree(rev, repo) / f"{repo}.{kind}.tar.gz"


def hash_seed(*parts) -> int:
    return int.from_bytes(hashlib.sha256(repr(parts).encode()).digest()[:8], "little")


def default_base(repo: Path) -> Path:
    env = os.environ.get("PKGSTASH_BENCH_FIXTURES")
    return Path(env) if env else repo / "target" / "bench-fixtures"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", help="fixture cache directory (default: target/bench-fixtures)")
    ap.add_argument("--scale", type=float, default=1.0, help="scale the package counts")
    ap.add_argument("--lan", action="store_true", help="also make the LAN-day payload revision")
    ap.add_argument("--lan-payload-mib", type=int, default=1024)
    a = ap.parse_args()
    repo = Path(__file__).resolve().parent.parent
    p = Params(lan_payload=a.lan_payload_mib * MiB)
    if a.scale != 1.0:
        p = p.scaled(a.scale)
    fx = Fixture(Path(a.base) if a.base else default_base(repo), p).ensure(a.lan)
    print(fx.dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
