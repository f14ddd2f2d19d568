"""The fake pkgstash behind the mock server: a cache, mirrors, downloads in flight, the
per-minute ring, custom repos and an AUR build server, shaped exactly as docs/admin-api.md
says. Time-driven and deterministic (seeded), advanced by `tick()` on every request; no
threads of its own. Stdlib only."""

import base64
import hashlib
import math
import random
import threading
import time

from mock_aur import AurWorld

GiB = 1 << 30
MiB = 1 << 20
KiB = 1 << 10

OUTCOMES = ["hit", "miss", "joined", "revalidated", "stale", "not_found", "error"]
PKG_EXTS = ["", ".zst", ".xz", ".gz", ".bz2", ".lz4", ".lzo", ".lrz", ".Z"]


class ApiError(Exception):
    """An error answered as text/plain, `"<kind>: <detail>"`, like src/error.rs."""

    KINDS = {400: "bad request", 404: "not found", 409: "conflict", 413: "payload too large", 500: "internal error"}

    def __init__(self, status, detail=None, allow=None):
        self.status = status
        self.allow = allow
        kind = self.KINDS.get(status, "error")
        if status == 404 and detail is None:
            self.text = "not found"
        elif status == 405:
            self.text = f"method not allowed (allowed: {allow})"
        else:
            self.text = f"{kind}: {detail}"
        super().__init__(self.text)


def is_package_file_name(name):
    """src/pkgfile.rs is_package_file_name."""
    stem, sep, ext = name.partition(".pkg.tar")
    return bool(sep) and bool(stem) and ext in PKG_EXTS


def parse_pkg_filename(name):
    """`name-ver-rel-arch.pkg.tar.zst` → (name, version, arch) or None."""
    if not is_package_file_name(name):
        return None
    stem = name.split(".pkg.tar")[0]
    parts = stem.rsplit("-", 3)
    if len(parts) != 4 or not all(parts):
        return None
    return parts[0], f"{parts[1]}-{parts[2]}", parts[3]


def vercmp_key(v):
    """Good enough for the mock's versions (digits compared as numbers)."""
    out = []
    for chunk in v.replace(":", ".").replace("-", ".").split("."):
        out.append((0, int(chunk), "") if chunk.isdigit() else (1, 0, chunk))
    return out


class World:
    def __init__(self, seed=19, upload_rate=4 * MiB):
        self.lock = threading.RLock()
        self.rng = random.Random(seed)
        self.t0 = time.time()
        # The "server" started 20 h ago, so the 24 h chart shows a gap at its start.
        self.started = int(self.t0) - 20 * 3600
        self.upload_rate = upload_rate
        self.files = {}  # cache key → file dict
        self.upstreams = {"archlinux": ["core/os/x86_64", "extra/os/x86_64", "multilib/os/x86_64"],
                          "archarm": []}
        self._make_cache()
        self.mirrors = [
            self._mirror("archlinux", "https://geo.mirror.pkgbuild.com", 1620, 2, 7 * GiB, None),
            self._mirror("archlinux", "https://mirror.example.org/archlinux", 88, 1, 540 * MiB, None),
            self._mirror("archlinux", "https://slow.example.net/arch", 12, 9,
                         31 * MiB, "https://slow.example.net/arch/extra/os/x86_64/extra.db: timed out after 15s (no byte)"),
            self._mirror("archarm", "http://mirror.archlinuxarm.org", 0, 0, 0, None),
        ]
        self.mirrors[2]["cooldown_until"] = self.t0 + 420
        self.mirrors[2]["consecutive_failures"] = 4
        self.requests = {"hit": 9120, "miss": 1403, "joined": 211, "revalidated": 640, "stale": 3, "not_found": 57, "error": 4}
        self.bytes_saved = 50 * GiB + 123456789
        self.bytes_inflight = 7 * GiB
        self.last_refresh = {"started_at": int(self.t0) - 1800, "duration_ms": 5230, "dbs_checked": 6, "dbs_updated": 2,
                             "prefetched": ["archlinux/core/os/x86_64/systemd-257.2-1-x86_64.pkg.tar.zst",
                                            "archlinux/extra/os/x86_64/firefox-134.0-1-x86_64.pkg.tar.zst"],
                             "cleaned": 3, "errors": []}
        self.repos = {
            "custom": {"name": "custom", "arch": ["x86_64"], "signed": False, "max_upload": 2 * GiB, "aur": True,
                       "packages": {}},
            "lan": {"name": "lan", "arch": ["x86_64", "aarch64"], "signed": True, "max_upload": 512 * MiB, "aur": False,
                    "packages": {}},
        }
        for name, ver, arch, size in [("paru", "2.0.4-1", "x86_64", 3 * MiB + 12345), ("yay", "12.4.1-1", "x86_64", 2 * MiB + 777),
                                      ("python-foo", "0.9-1", "any", 45 * KiB), ("hello", "2.12.1-1", "x86_64", 90 * KiB)]:
            self.add_package("custom", f"{name}-{ver}-{arch}.pkg.tar.zst", size, signed=False, when=self.t0 - 86400 * 3)
        for name, ver, arch, size in [("site-config", "1.4-2", "any", 12 * KiB), ("backup-agent", "3.1.0-1", "x86_64", 8 * MiB)]:
            self.add_package("lan", f"{name}-{ver}-{arch}.pkg.tar.zst", size, signed=True, when=self.t0 - 86400 * 9)
        self.aur = AurWorld(self, self.t0)
        self.auth_failures = {}

    # ---- cache ----
    def _mirror(self, upstream, url, ok, failed, nbytes, err):
        return {"upstream": upstream, "url": url, "successes": ok, "failures": failed, "bytes": nbytes,
                "last_error": err, "cooldown_until": None, "consecutive_failures": 0,
                "last_success_at": int(self.t0) - self.rng.randint(5, 600) if ok else None,
                "last_failure_at": int(self.t0) - self.rng.randint(60, 4000) if failed else None}

    def _make_cache(self):
        names = ["acl", "attr", "bash", "binutils", "bzip2", "coreutils", "curl", "dbus", "e2fsprogs", "expat", "file",
                 "filesystem", "findutils", "gawk", "gcc-libs", "gettext", "glib2", "glibc", "gmp", "gnupg", "gnutls",
                 "gpgme", "grep", "gzip", "iproute2", "iptables", "kmod", "krb5", "libarchive", "libcap", "libelf",
                 "libffi", "libgcrypt", "libidn2", "libnghttp2", "libpsl", "libseccomp", "libssh2", "libtasn1",
                 "libxcrypt", "libxml2", "linux", "linux-firmware", "lz4", "ncurses", "nettle", "openssl", "p11-kit",
                 "pacman", "pam", "pcre2", "readline", "sed", "shadow", "sqlite", "systemd", "tar", "tzdata",
                 "util-linux", "xz", "zlib", "zstd"]
        extra = ["firefox", "thunderbird", "vlc", "gimp", "inkscape", "libreoffice-fresh", "mesa", "vulkan-radeon",
                 "python", "python-pip", "python-requests", "nodejs", "npm", "go", "rust", "cmake", "ninja", "meson",
                 "qt6-base", "gtk4", "gtk3", "ffmpeg", "pipewire", "wireplumber", "noto-fonts", "ttf-dejavu",
                 "docker", "containerd", "htop", "btop", "neovim", "vim", "emacs", "git", "openssh", "rsync",
                 "wget", "jq", "ripgrep", "fd", "bat", "tmux", "zsh", "fish", "kitty", "alacritty", "chromium",
                 "code", "postgresql", "mariadb", "nginx", "haproxy", "prometheus", "grafana", "texlive-basic"]
        now = int(self.t0)
        r = self.rng
        for upstream, dirs in self.upstreams.items():
            for d in dirs:
                repo = d.split("/")[0]
                pool = names if repo == "core" else extra if repo == "extra" else ["lib32-glibc", "lib32-mesa", "steam", "wine"]
                for db in [f"{repo}.db", f"{repo}.files"]:
                    self._put(f"{upstream}/{d}/{db}", r.randint(60 * KiB, 9 * MiB), now - r.randint(100, 3000),
                              now - r.randint(1, 200), r.randint(200, 900), kind="database")
                for name in pool:
                    arch = "any" if name.startswith(("ttf-", "noto-", "tzdata", "python-", "linux-firmware")) else "x86_64"
                    major = r.randint(1, 30)
                    versions = [f"{major}.{r.randint(0, 9)}.{v}-{r.randint(1, 3)}" for v in sorted(r.sample(range(0, 12), r.choice([1, 1, 2, 3])))]
                    size = int(r.lognormvariate(14.5, 1.6)) + 4096
                    if name == "linux-firmware":
                        size = 283 * MiB
                    db_version = versions[-1]
                    if r.random() < 0.18:
                        last = versions[-1].split("-")[0].split(".")
                        db_version = f"{last[0]}.{last[1]}.{int(last[2]) + 1}-1"
                    for i, v in enumerate(versions):
                        fname = f"{name}-{v}-{arch}.pkg.tar.zst"
                        served = now - int(r.expovariate(1 / 86400)) - i * 86400 * 7
                        hits = int(r.expovariate(1 / 25)) if i == len(versions) - 1 else r.randint(0, 4)
                        self._put(f"{upstream}/{d}/{fname}", size + r.randint(-1000, 1000), served - 86400, served, hits,
                                  kind="package", name=name, version=v, arch=arch, sig=True,
                                  db_version=db_version)
                # a lone signature and an unparsable file, to show every kind
                if repo == "extra":
                    self._put(f"{upstream}/{d}/orphan-1.0-1-x86_64.pkg.tar.zst.sig", 566, now - 90000, now - 90000, 1, kind="signature")

    def _put(self, key, size, mtime, last_served, hits, kind, name=None, version=None, arch=None, sig=False, db_version=None):
        upstream, rest = key.split("/", 1)
        d, f = rest.rsplit("/", 1)
        self.files[key] = {"path": key, "dir": d, "file": f, "kind": kind, "name": name, "version": version, "arch": arch,
                           "size": size, "mtime": mtime, "last_served": last_served, "hits": hits, "sig": sig,
                           "sig_size": 566 if sig else None, "db_version": db_version if kind == "package" else None,
                           "newer_in_db": False, "downloading": False}
        if kind == "package" and db_version:
            self.files[key]["newer_in_db"] = vercmp_key(db_version) > vercmp_key(version)

    def cache_tree(self):
        out = []
        for up in self.upstreams:
            files = [f for k, f in self.files.items() if k.startswith(up + "/")]
            dirs = {}
            for f in files:
                d = dirs.setdefault(f["dir"], {"dir": f["dir"], "files": 0, "bytes": 0, "packages": 0, "dbs": []})
                d["files"] += 1 + (1 if f["sig"] else 0)
                d["bytes"] += f["size"] + (f["sig_size"] or 0)
                d["packages"] += f["kind"] == "package"
                if f["kind"] == "database":
                    d["dbs"].append(f["file"])
            out.append({"name": up, "files": sum(d["files"] for d in dirs.values()), "bytes": sum(d["bytes"] for d in dirs.values()),
                        "dirs": [dirs[k] for k in sorted(dirs)]})
        return {"upstreams": out}

    def cache_list(self, prefix):
        prefix = prefix.strip("/")
        up = prefix.split("/")[0]
        if up not in self.upstreams:
            raise ApiError(404)
        rows = [dict(f) for k, f in sorted(self.files.items()) if k == prefix or k.startswith(prefix + "/")]
        if not rows:
            raise ApiError(404)
        inflight = {d["path"].lstrip("/") for d in self.inflight()}
        for r in rows:
            r["downloading"] = r["path"] in inflight
        return {"prefix": prefix, "truncated": False, "now": int(time.time()), "files": rows}

    def evict(self, path):
        if path.split("/")[0] not in self.upstreams:
            raise ApiError(404)
        if any(d["path"].lstrip("/") == path for d in self.inflight()):
            raise ApiError(409, f"/{path} is being downloaded")
        if path.endswith(".sig") and path[:-4] in self.files and self.files[path[:-4]]["sig"]:
            f = self.files[path[:-4]]
            f["sig"], size, f["sig_size"] = False, f["sig_size"], None
            return {"path": "/" + path, "bytes": size}
        f = self.files.pop(path, None)
        if not f:
            raise ApiError(404)
        if f["sig"]:  # the .sig stays until evicted too (the UI does that next)
            self._put(path + ".sig", f["sig_size"], f["mtime"], f["last_served"], 0, kind="signature")
        return {"path": "/" + path, "bytes": f["size"]}

    def cleanup(self, dry_run):
        victims = []
        by_name = {}
        for k, f in self.files.items():
            if f["kind"] == "package":
                by_name.setdefault((f["dir"], f["name"], f["arch"]), []).append(f)
        for group in by_name.values():
            group.sort(key=lambda f: vercmp_key(f["version"]), reverse=True)
            for f in group[2:]:
                victims.append({"path": f["path"], "bytes": f["size"], "reason": "older than the 2 newest version(s)"})
        for k, f in self.files.items():
            if f["kind"] == "signature":
                victims.append({"path": k, "bytes": f["size"], "reason": "signature of a package that is not cached"})
        if not dry_run:
            for v in victims:
                self.files.pop(v["path"], None)
        return {"dry_run": dry_run, "removed": victims, "freed_bytes": sum(v["bytes"] for v in victims), "errors": []}

    # ---- live data ----
    def inflight(self):
        now = time.time()
        out = []
        total = 283 * MiB
        rate = 9 * MiB
        cycle = total / rate + 4
        t = (now - self.t0) % cycle
        if t < total / rate:
            done = int(t * rate)
            out.append({"path": "/archlinux/extra/os/x86_64/linux-firmware-20241210-1-any.pkg.tar.zst", "phase": "streaming",
                        "bytes_done": done, "bytes_total": total, "rate_bps": rate, "clients": 2, "elapsed_ms": int(t * 1000),
                        "mirror": "https://geo.mirror.pkgbuild.com"})
        t2 = (now - self.t0) % 20
        if t2 < 14:
            done = int(t2 * 700 * KiB)
            out.append({"path": "/archlinux/extra/os/x86_64/python-3.13.1-1-x86_64.pkg.tar.zst", "phase": "streaming" if t2 > 1 else "connecting",
                        "bytes_done": done if t2 > 1 else 0, "bytes_total": None if t2 <= 1 else None, "rate_bps": 700 * KiB, "clients": 1,
                        "elapsed_ms": int(t2 * 1000), "mirror": "https://mirror.example.org/archlinux"})
        return out

    def mirror_status(self, m):
        now = time.time()
        cool = max(0, int((m["cooldown_until"] or 0) - now))
        t = now - self.t0
        recent = 0
        if m["url"].startswith("https://geo"):
            recent = int(9 * MiB * 0.6 + 2 * MiB * math.sin(t / 30))
        elif "mirror.example.org" in m["url"]:
            recent = 700 * KiB
        return {"upstream": m["upstream"], "url": m["url"], "healthy": cool == 0, "cooldown_secs": cool,
                "consecutive_failures": m["consecutive_failures"], "successes": m["successes"], "failures": m["failures"],
                "bytes": m["bytes"] + (int(t * recent) if recent else 0), "last_error": m["last_error"],
                "recent_rate_bps": recent, "last_success_at": int(now) - 1 if recent else m["last_success_at"],
                "last_failure_at": m["last_failure_at"]}

    def reset_cooldown(self, upstream, url):
        for m in self.mirrors:
            if m["upstream"] == upstream and m["url"] == url:
                m["cooldown_until"] = None
                m["consecutive_failures"] = 0
                return self.mirror_status(m)
        raise ApiError(404, f"no mirror {url} in upstream {upstream}")

    def status(self):
        now = time.time()
        el = now - self.t0
        req = dict(self.requests)
        req["hit"] += int(el * 3.1)
        req["miss"] += int(el * 0.2)
        req["revalidated"] += int(el * 0.1)
        served_local = req["hit"] + req["revalidated"] + req["stale"]
        answered = served_local + req["miss"] + req["joined"]
        ups = {}
        for up in self.upstreams:
            fs = [f for k, f in self.files.items() if k.startswith(up + "/")]
            ups[up] = {"bytes": sum(f["size"] + (f["sig_size"] or 0) for f in fs), "files": sum(1 + bool(f["sig"]) for f in fs)}
        return {
            "version": "0.1.0", "uptime_secs": int(now) - self.started, "now": int(now),
            "cache_bytes": sum(u["bytes"] for u in ups.values()), "cache_files": sum(u["files"] for u in ups.values()),
            "upstreams": ups, "requests": req, "hit_ratio": served_local / answered if answered else 0.0,
            "bytes_saved": self.bytes_saved + int(el * 6 * MiB), "bytes_from_upstream": self.bytes_inflight + int(el * 2 * MiB),
            "inflight": self.inflight(), "mirrors": [self.mirror_status(m) for m in self.mirrors],
            "last_refresh": self.last_refresh, "admin_enabled": True, "aur": self.aur.summary(),
        }

    def stats(self, rng):
        if rng not in ("1h", "24h"):
            raise ApiError(400, "range must be 1h or 24h")
        n = 60 if rng == "1h" else 1440
        now = int(time.time())
        start = (now // 60 - (n - 1)) * 60
        req = {k: [] for k in OUTCOMES}
        byt = {"served_cache": [], "served_inflight": [], "fetched_upstream": []}
        for i in range(n):
            t = start + 60 * i
            if t + 60 <= self.started:
                for a in list(req.values()) + list(byt.values()):
                    a.append(None)
                continue
            r = random.Random(t)  # the same minute always gets the same numbers
            day = 0.55 + 0.45 * math.sin((t % 86400) / 86400 * 2 * math.pi - 1.2)
            burst = 4 if r.random() < 0.04 else 1
            hits = int(max(0, r.gauss(40, 12)) * day * burst)
            misses = int(max(0, r.gauss(4, 2)) * day * burst)
            vals = {"hit": hits, "miss": misses, "joined": int(misses * r.random() * 0.6),
                    "revalidated": int(max(0, r.gauss(8, 3)) * day), "stale": 1 if r.random() < 0.01 else 0,
                    "not_found": 1 if r.random() < 0.15 else 0, "error": 1 if r.random() < 0.02 else 0}
            for k in OUTCOMES:
                req[k].append(vals[k])
            byt["served_cache"].append(hits * r.randint(200 * KiB, 3 * MiB))
            up = misses * r.randint(300 * KiB, 6 * MiB)
            byt["fetched_upstream"].append(up)
            byt["served_inflight"].append(int(up * (1 + vals["joined"] * 0.5)))
        return {"range": rng, "step_secs": 60, "buckets": n, "start": start, "now": now, "since": self.started,
                "requests": req, "bytes": byt}

    # ---- custom repos ----
    def add_package(self, repo, filename, size, signed, when=None):
        name, version, arch = parse_pkg_filename(filename)
        r = self.repos[repo]
        old = r["packages"].get(name)
        digest = hashlib.sha256(filename.encode()).hexdigest()
        r["packages"][name] = {
            "filename": filename, "name": name, "base": name, "version": version, "desc": f"{name}: a package in {repo}",
            "url": "", "arch": arch, "builddate": str(int(when or time.time())), "packager": "Jane Admin <jane@example.org>",
            "isize": size * 3, "csize": size, "md5": digest[:32], "sha256": digest,
            "pgpsig": base64.b64encode(b"sig-" + filename.encode()).decode() if signed else None,
            "groups": [], "license": ["MIT"], "replaces": [], "conflicts": [], "provides": [], "depends": ["glibc"],
            "optdepends": [], "makedepends": [], "checkdepends": [], "files": ["usr/", "usr/bin/", f"usr/bin/{name}"]}
        return {"repo": repo, "name": name, "version": version, "arch": arch, "filename": filename,
                "replaced": old["version"] if old else None, "pruned": []}

    def repo(self, name):
        r = self.repos.get(name)
        if not r:
            raise ApiError(404, f"no repo named `{name}`")
        return r

    def repo_summaries(self):
        return [{"name": r["name"], "arch": r["arch"], "packages": len(r["packages"]),
                 "bytes": sum(p["csize"] for p in r["packages"].values()), "signed": r["signed"],
                 "max_upload": r["max_upload"], "aur": r["aur"]} for r in self.repos.values()]

    def check_upload(self, repo_name, filename, length, sig_header):
        """The checks src/admin.rs repo_upload does before reading the body."""
        r = self.repo(repo_name)
        if not is_package_file_name(filename) or "/" in filename:
            raise ApiError(400, f"`{filename}` is not a package file name (name-version-arch.pkg.tar.zst)")
        if sig_header is not None:
            try:
                base64.b64decode(sig_header.strip(), validate=True)
            except Exception as e:  # noqa: BLE001 - any decoding problem is the client's
                raise ApiError(400, f"signature is not base64: {e}")
        if length is not None and length > r["max_upload"]:
            raise ApiError(413, f"{length} bytes is over the repo's max_upload of {r['max_upload']}")
        return r

    def finish_upload(self, repo_name, filename, body_size, head, signed):
        """What src/localrepo.rs checks once the body is in (the mock reads no .PKGINFO)."""
        r = self.repo(repo_name)
        if body_size == 0:
            raise ApiError(400, "empty upload")
        parsed = parse_pkg_filename(filename)
        if parsed is None:
            raise ApiError(400, f"bad package: .PKGINFO: name, version or arch differ from the file name `{filename}`")
        if not (head.startswith(b"\x28\xb5\x2f\xfd") or head.startswith(b"\xfd7zXZ") or head.startswith(b"\x1f\x8b")
                or head[257:262] == b"ustar" or head.startswith(b"MOCKPKG")):
            raise ApiError(400, "bad package: not a package archive: unrecognized archive format")
        if parsed[2] != "any" and parsed[2] not in r["arch"]:
            allowed = "[" + ", ".join(f'"{a}"' for a in r["arch"]) + "]"
            raise ApiError(400, f"repo {repo_name}: architecture `{parsed[2]}` is not one of {allowed}")
        return self.add_package(repo_name, filename, body_size, signed=signed or r["signed"])

    def remove_package(self, repo_name, name):
        r = self.repo(repo_name)
        p = r["packages"].pop(name, None)
        if not p:
            raise ApiError(404, f"repo {repo_name}: no package named `{name}`")
        return p
