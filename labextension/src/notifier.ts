// Notifications: when a job added with notify=True completes or fails, JupyterLab says so
// (Notification from @jupyterlab/apputils), with an action that opens the job in the sidebar.
//
// One long-poll on the change counter (`GET /wiz/api/changes`), like the sidebar's but
// running whether or not the sidebar is shown; after each change, `GET /wiz/api/notifications`
// with the cursor of the last answer. The first answer only sets the cursor: a lab that
// opens does not replay old news (unless the database did not exist yet: then its news
// is all new). It watches the workspace the sidebar shows (`setWorkspace`); moving to
// another starts its news from then.

import { Notification } from '@jupyterlab/apputils';

import { INote, WizAPI } from './api';

const POLL_TIMEOUT = 25;

function sleep(ms: number): Promise<void> {
  return new Promise(resolve => setTimeout(resolve, ms));
}

export interface INotifierOptions {
  api: WizAPI;
  /** Open job `id` in the Wiz sidebar. */
  openJob: (id: number) => void;
}

/** The one line a notification says about a job's end. */
export function noteMessage(n: INote): string {
  const who = n.agent ? `${n.agent}: ` : '';
  const what = `Wiz job ${n.job_id} (${who}${n.task}) ${n.status}`;
  return n.status === 'failed' && n.error ? `${what}: ${n.error}` : what;
}

export class Notifier {
  private readonly api: WizAPI;
  private readonly openJob: (id: number) => void;
  private abort = new AbortController();
  private cursor: number | null = null;
  // the database did not exist when we started: once it does, all of its news is new
  private fromStart = false;
  private started = false;

  constructor(options: INotifierOptions) {
    this.api = options.api;
    this.openJob = options.openJob;
  }

  start(): void {
    this.started = true;
    void this.run();
  }

  dispose(): void {
    this.abort.abort();
  }

  /** Watch workspace `id` from now on (the one the sidebar shows). */
  setWorkspace(id: string): void {
    if (id === this.api.workspace) {
      return;
    }
    this.abort.abort();
    this.abort = new AbortController();
    this.api.workspace = id;
    this.cursor = null;
    this.fromStart = false;
    if (this.started) {
      void this.run();
    }
  }

  private async run(): Promise<void> {
    const signal = this.abort.signal;
    let token: string | null = null;
    let backoff = 1000;
    while (!signal.aborted) {
      try {
        if (this.cursor === null && !this.fromStart) {
          this.cursor = (await this.api.notifications(null)).cursor;
          this.fromStart = this.cursor === null;
        }
        const changes = await this.api.changes(token, POLL_TIMEOUT, signal);
        if (signal.aborted) {
          break; // another workspace is watched now
        }
        if (changes.changed) {
          token = changes.token;
          await this.check();
        }
        backoff = 1000;
      } catch {
        if (signal.aborted) {
          break;
        }
        await sleep(backoff); // the sidebar says the API is unreachable; here we just wait
        backoff = Math.min(backoff * 2, 30000);
      }
    }
  }

  private async check(): Promise<void> {
    if (this.cursor === null && !this.fromStart) {
      this.cursor = (await this.api.notifications(null)).cursor;
      return;
    }
    const answer = await this.api.notifications(this.cursor ?? 0);
    this.cursor = answer.cursor ?? this.cursor;
    for (const n of answer.notifications) {
      this.show(n);
    }
  }

  private show(n: INote): void {
    const options = {
      autoClose: n.status === 'failed' ? (false as const) : 8000,
      actions: [
        {
          label: 'Show job',
          caption: `Open job ${n.job_id} in the Wiz sidebar`,
          callback: () => this.openJob(n.job_id)
        }
      ],
      data: { wizJob: n.job_id }
    };
    if (n.status === 'failed') {
      Notification.error(noteMessage(n), options);
    } else {
      Notification.success(noteMessage(n), options);
    }
  }
}
