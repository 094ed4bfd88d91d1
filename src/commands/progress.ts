import type { Ctx } from './context.js';
import { bytesHuman, ctl } from './render.js';

/**
 * A one-line progress bar on stderr, redrawn at most every 100 ms; only ever created when stderr
 * is a TTY. Shows bytes done of total, throughput and a caller's note (layers, files).
 */
export class Progress {
  private readonly start = Date.now();
  private last = 0;
  private drawn = false;

  constructor(
    private readonly ctx: Ctx,
    private readonly label: string,
  ) {}

  update(done: number, total: number, note = ''): void {
    const now = Date.now();
    if (now - this.last < 100 && done < total) return;
    this.last = now;
    const width = 24;
    const frac = total > 0 ? Math.min(1, done / total) : 0;
    const filled = Math.round(frac * width);
    const secs = Math.max(0.001, (now - this.start) / 1000);
    const bar = `${'█'.repeat(filled)}${'░'.repeat(width - filled)}`;
    this.ctx.stderr.write(`${ctl('\r\u001b')}[K${this.label} ${bar} ${bytesHuman(done)}/${bytesHuman(total)} ${bytesHuman(done / secs)}/s ${note}`);
    this.drawn = true;
  }

  done(): void {
    if (this.drawn) this.ctx.stderr.write(`${ctl('\r\u001b')}[K`);
  }
}
