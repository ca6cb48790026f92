// The REST API of the wiz_jupyter server extension (wiz_jupyter/server/handlers.py).
// Requests go through ServerConnection, so they carry the server's token and XSRF cookie.
// Every request but `workspaces` is about one workspace: `WizAPI.workspace` (an id from
// `workspaces()`; null: the server's default) goes with it as `?workspace=`.

import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

export const STATUSES = [
  'waiting',
  'delayed',
  'blocked',
  'active',
  'awaiting_input',
  'completed',
  'failed',
  'cancelled'
] as const;
export const LIVE = new Set(['waiting', 'delayed', 'blocked', 'active', 'awaiting_input']);

export type Counts = Record<string, number>;

export interface ISummary {
  /** the id of the workspace this answer is about */
  workspace: string;
  db: string;
  exists: boolean;
  counts: Counts;
  paused: boolean;
  token: string;
}

export interface IChanges extends ISummary {
  changed: boolean;
}

export interface IAgent {
  name: string;
  role?: string | null;
  goal?: string | null;
  model?: string | null;
  status?: string | null;
  tools?: unknown;
  jobs: Counts;
}

export interface IJobRow {
  id: number;
  task: string;
  agent: string | null;
  status: string;
  priority: number;
  progress: unknown;
  attempts: number;
  attempts_made: number;
  error: string | null;
  fail_reason: string | null;
  parent_id: number | null;
  run_at: number | null;
  created_at: number;
  started_at: number | null;
  finished_at: number | null;
  /** 1 when the job asked to be announced when it ends */
  notify?: number;
  /** what a job awaiting input asks a person, and the reply (null: it never asked) */
  input?: IInput | null;
}

/** A tool call to approve, or a question (`ask_user`); its values come from the model. */
export interface IRequest {
  kind: 'approval' | 'question';
  tool?: string;
  args?: unknown;
  question?: string;
  agent?: string;
}

export interface IInput {
  request: IRequest | null;
  reply: Record<string, unknown> | null;
  since: number | null;
}

export interface INote {
  cursor: number;
  job_id: number;
  status: 'completed' | 'failed';
  task: string;
  agent: string | null;
  error: string | null;
  at: number;
}

export interface INotes {
  cursor: number | null;
  notifications: INote[];
}

export interface IJobPage {
  jobs: IJobRow[];
  limit: number;
  offset: number;
  more: boolean;
}

export interface IJobEvent {
  event: string;
  data: Record<string, unknown>;
  at: number;
}

export interface IActivity {
  agent?: string;
  phase?: string | null;
  plan?: unknown;
  criteria?: unknown;
  tool_calls?: unknown;
  validation?: unknown;
  steps?: number | null;
  replans?: number | null;
}

export interface IJobDetail {
  job: IJobRow & { data: unknown; result: unknown; timeout: number | null; key: string | null };
  events: IJobEvent[];
  activity: IActivity | null;
  /** A notebook job's executed copy; `rel` (to the server's root) when JupyterLab can open it. */
  notebook: { path: string; rel: string | null } | null;
}

export interface ISchedule {
  id: number;
  name: string;
  kind: string;
  description: string;
  task: string;
  status: string;
  trigger: Record<string, unknown>;
  next_run: number | null;
  last_run: number | null;
  run_count: number;
  fail_count: number;
}

/** A workspace the server knows (GET /wiz/api/workspaces). */
export interface IWorkspace {
  id: string;
  path: string;
  /** the path under the server's root, when it is there */
  rel: string | null;
  /** `rel`, else `path` */
  label: string;
  exists: boolean;
  default: boolean;
  /** where the server learnt of it: "config", "WIZ_HOME", "root", "kernel" */
  sources: string[];
  kernels: string[];
  /** the notebooks whose kernels use it */
  notebooks: string[];
}

export interface IWorkspaces {
  default: string;
  workspaces: IWorkspace[];
  /** kernel id -> the id of the workspace that kernel uses */
  kernels: Record<string, string>;
}

export interface IJobFilter {
  status: string;
  task: string;
  agent: string;
  limit: number;
}

/** An error answer of the API, with its message. */
export class APIError extends Error {
  constructor(
    message: string,
    readonly status: number
  ) {
    super(message);
  }
}

export class WizAPI {
  readonly settings = ServerConnection.makeSettings();
  /** The workspace requests are about (an id of `workspaces()`); null: the server's default. */
  workspace: string | null = null;

  /** The URL that fires a webhook schedule called `name`. */
  hookUrl(name: string): string {
    return URLExt.join(this.settings.baseUrl, 'wiz/hooks', encodeURIComponent(name));
  }

  async request<T>(path: string, init: RequestInit = {}, workspace = this.workspace): Promise<T> {
    let url = URLExt.join(this.settings.baseUrl, 'wiz/api', path);
    if (workspace) {
      url += `${url.includes('?') ? '&' : '?'}workspace=${encodeURIComponent(workspace)}`;
    }
    const response = await ServerConnection.makeRequest(url, init, this.settings);
    const text = await response.text();
    let body: any = null;
    try {
      body = text ? JSON.parse(text) : null;
    } catch {
      body = null;
    }
    if (!response.ok) {
      const message = (body && typeof body.message === 'string' && body.message) || response.statusText;
      throw new APIError(message, response.status);
    }
    return body as T;
  }

  /** Every workspace the server knows, and which one each running kernel uses. */
  workspaces(): Promise<IWorkspaces> {
    return this.request<IWorkspaces>('workspaces', {}, null);
  }

  changes(since: string | null, timeout: number, signal?: AbortSignal): Promise<IChanges> {
    const q = new URLSearchParams({ timeout: String(timeout) });
    if (since) {
      q.set('since', since);
    }
    return this.request<IChanges>(`changes?${q}`, { signal });
  }

  async agents(): Promise<IAgent[]> {
    return (await this.request<{ agents: IAgent[] }>('agents')).agents;
  }

  jobs(filter: IJobFilter): Promise<IJobPage> {
    const q = new URLSearchParams({ limit: String(filter.limit) });
    if (filter.status) {
      q.set('status', filter.status);
    }
    if (filter.task) {
      q.set('task', filter.task);
    }
    if (filter.agent) {
      q.set('agent', filter.agent);
    }
    return this.request<IJobPage>(`jobs?${q}`);
  }

  /** The ends of jobs that asked to be announced, after `cursor` (null: from now). */
  notifications(cursor: number | null): Promise<INotes> {
    return this.request<INotes>(cursor === null ? 'notifications' : `notifications?after=${cursor}`);
  }

  job(id: number): Promise<IJobDetail> {
    return this.request<IJobDetail>(`jobs/${id}`);
  }

  jobAction(id: number, action: 'cancel' | 'retry'): Promise<unknown> {
    return this.request(`jobs/${id}/${action}`, { method: 'POST' });
  }

  /** Approve the tool call job `id` awaits (409 when it awaits nothing, or a question). */
  approve(id: number): Promise<unknown> {
    return this.request(`jobs/${id}/approve`, { method: 'POST' });
  }

  /** Refuse job `id`'s tool call (or decline its question); the model reads `reason`. */
  deny(id: number, reason: string): Promise<unknown> {
    return this.request(`jobs/${id}/deny`, { method: 'POST', body: JSON.stringify({ reason }) });
  }

  /** Answer the question job `id` asked (`ask_user`). */
  answer(id: number, text: string): Promise<unknown> {
    return this.request(`jobs/${id}/answer`, { method: 'POST', body: JSON.stringify({ text }) });
  }

  setPriority(id: number, priority: number): Promise<unknown> {
    return this.request(`jobs/${id}/priority`, {
      method: 'POST',
      body: JSON.stringify({ priority })
    });
  }

  async schedules(): Promise<ISchedule[]> {
    return (await this.request<{ schedules: ISchedule[] }>('schedules')).schedules;
  }

  scheduleAction(id: number, action: 'pause' | 'resume'): Promise<unknown> {
    return this.request(`schedules/${id}/${action}`, { method: 'POST' });
  }
}
