// Number, size, time formatting. Sizes are binary (KiB, MiB) like the CLI's.

const UNITS = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];

/** 1536 → "1.5 KiB". */
export function bytes(n) {
  if (n == null || Number.isNaN(n)) return "–";
  let i = 0;
  let v = Math.abs(n);
  while (v >= 1024 && i < UNITS.length - 1) { v /= 1024; i++; }
  const s = i === 0 ? String(Math.round(v)) : v.toFixed(v < 10 ? 2 : 1);
  return (n < 0 ? "-" : "") + s + " " + UNITS[i];
}

export const rate = (bps) => (bps == null ? "–" : bytes(bps) + "/s");

export const int = (n) => (n == null ? "–" : Number(n).toLocaleString("en-US"));

export const pct = (x, digits = 1) => (x == null ? "–" : (x * 100).toFixed(digits) + " %");

/** 93784 → "1d 2h 3m"; under a minute → "42s". */
export function duration(secs) {
  if (secs == null) return "–";
  secs = Math.max(0, Math.round(secs));
  if (secs < 60) return secs + "s";
  const d = Math.floor(secs / 86400), h = Math.floor((secs % 86400) / 3600), m = Math.floor((secs % 3600) / 60);
  const s = secs % 60;
  if (d) return `${d}d ${h}h ${m}m`;
  if (h) return `${h}h ${m}m`;
  return `${m}m${s ? " " + s + "s" : ""}`;
}

/** Unix seconds → "2025-01-01 12:00" in local time (ISO-like, unambiguous). */
export function datetime(unix) {
  if (unix == null || unix === 0) return "–";
  const d = new Date(unix * 1000);
  const p = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}`;
}

/** Unix seconds → "3 min ago" relative to `now` (Unix seconds, default: the clock). */
export function ago(unix, now = Date.now() / 1000) {
  if (unix == null || unix === 0) return "never";
  const s = Math.round(now - unix);
  if (s < 0) return "in " + duration(-s);
  if (s < 10) return "just now";
  if (s < 60) return s + " s ago";
  if (s < 3600) return Math.floor(s / 60) + " min ago";
  if (s < 86400) return Math.floor(s / 3600) + " h ago";
  return Math.floor(s / 86400) + " d ago";
}

/** A time element showing "3 min ago" with the exact time as tooltip. */
export function timeAgo(h, unix, now) {
  return h("time", { datetime: unix ? new Date(unix * 1000).toISOString() : null, title: datetime(unix) }, ago(unix, now));
}

export const shortRev = (rev) => (rev ? rev.slice(0, 12) : "–");
