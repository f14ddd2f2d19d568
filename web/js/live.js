// Polling that stops while the tab is hidden and catches up at once when it is shown.

const pollers = new Set();

document.addEventListener("visibilitychange", () => {
  if (!document.hidden) for (const p of pollers) p.kick();
});

export class Poller {
  /** `task()` is awaited; the next run is `interval` ms after it ends. */
  constructor(task, interval) {
    this.task = task;
    this.interval = interval;
    this.timer = null;
    this.running = false;
    this.stopped = true;
  }

  start() {
    this.stopped = false;
    pollers.add(this);
    this.kick();
    return this;
  }

  stop() {
    this.stopped = true;
    pollers.delete(this);
    clearTimeout(this.timer);
  }

  setInterval(ms) {
    this.interval = ms;
    this.kick();
  }

  /** Run now (unless a run is in progress), then keep the schedule. */
  async kick() {
    clearTimeout(this.timer);
    if (this.stopped || this.running) return;
    if (document.hidden) return;
    this.running = true;
    try { await this.task(); } catch (e) { console.warn(e); }
    this.running = false;
    if (!this.stopped && !document.hidden) this.timer = setTimeout(() => this.kick(), this.interval);
  }
}
