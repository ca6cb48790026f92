// The Wiz sidebar: agents, a live job board with a job's detail, and schedules, of one
// workspace: the active notebook's (its kernel announces it to the server), or the one
// picked in the workspace <select>, which lists every workspace the server knows.
//
// Live without hammering the server: one long-poll (`GET /wiz/api/changes`) at a time,
// answered when the workspace database changes; then the shown lists are fetched again,
// at most every REFRESH_GAP ms. Polling runs only while the sidebar is visible.

import type { Message } from '@lumino/messaging';
import { Widget } from '@lumino/widgets';

import {
  APIError,
  IAgent,
  IActivity,
  IChanges,
  IJobDetail,
  IJobFilter,
  IJobRow,
  IRequest,
  ISchedule,
  IWorkspaces,
  LIVE,
  STATUSES,
  WizAPI
} from './api';
import { append, badge, button, fmtDuration, fmtJSON, fmtTime, h, progressBar, shortPath } from './dom';

const POLL_TIMEOUT = 25;
const REFRESH_GAP = 300;
const PAGE = 50;
// how often the list of workspaces is fetched again while the sidebar is shown (kernels
// come and go; the active notebook's kernel also triggers a fetch when it goes idle)
const WORKSPACES_EVERY = 5000;

export interface ISidebarOptions {
  api: WizAPI;
  /** Insert a `%wiz chat NAME` cell for this agent in the current notebook. */
  onChat: (agent: string) => void;
  /** Open a file (a notebook job's executed copy) by its path under the server's root. */
  onOpen?: (path: string) => void;
  /** Told the id of the workspace shown, each time it changes (the notifier follows it). */
  onWorkspace?: (id: string) => void;
}

function sleep(ms: number): Promise<void> {
  return new Promise(resolve => setTimeout(resolve, ms));
}

export class WizSidebar extends Widget {
  private readonly api: WizAPI;
  private readonly onChat: (agent: string) => void;
  private readonly onOpen: ((path: string) => void) | undefined;

  private readonly onWorkspace: ((id: string) => void) | undefined;

  private token: string | null = null;
  private abort: AbortController | null = null;
  // the workspace shown: the active notebook's kernel's, unless one was picked by hand
  private known: IWorkspaces | null = null;
  private kernel: string | null = null;
  private picked = false;
  private workspacesTimer: number | undefined;
  private lastRefresh = 0;
  private filter: IJobFilter = { status: '', task: '', agent: '', limit: PAGE };
  private selected: number | null = null;
  private counts: Record<string, number> = {};
  private agents: IAgent[] = [];
  // the Approve / Deny / reply controls of jobs awaiting input, kept across redraws of the
  // list (which come with every change of the database) so a reason or an answer being
  // typed is not lost; by job id, with the request they were drawn for
  private asks = new Map<number, { key: string; node: HTMLElement }>();

  // the parts of the panel that are redrawn
  private readonly workspaceSelect = h('select', { className: 'wiz-workspace', title: 'The workspace shown' });
  private readonly dbLabel = h('span', { className: 'wiz-db' });
  private readonly conn = h('span', { className: 'wiz-conn', dataset: { state: 'connecting' } }, 'connecting');
  private readonly message = h('div', { className: 'wiz-message', role: 'status' });
  private readonly agentsTitle = h('span', {}, 'Agents');
  private readonly agentList = h('ul', { className: 'wiz-list wiz-agents' });
  private readonly chips = h('div', { className: 'wiz-chips' });
  private readonly agentSelect = h('select', { className: 'wiz-filter-agent', title: 'Filter by agent' });
  private readonly jobList = h('ul', { className: 'wiz-list wiz-jobs' });
  private readonly moreButton: HTMLButtonElement;
  private readonly detail = h('div', { className: 'wiz-detail', hidden: true });
  private readonly schedulesTitle = h('span', {}, 'Schedules');
  private readonly scheduleList = h('ul', { className: 'wiz-list wiz-schedules' });
  private messageTimer: number | undefined;

  constructor(options: ISidebarOptions) {
    super();
    this.api = options.api;
    this.onChat = options.onChat;
    this.onOpen = options.onOpen;
    this.onWorkspace = options.onWorkspace;
    this.addClass('wiz-sidebar');
    this.workspaceSelect.addEventListener('change', () => {
      this.picked = true; // until the user moves to another notebook
      this.switchTo(this.workspaceSelect.value);
    });

    const taskInput = h('input', {
      className: 'wiz-filter-task',
      type: 'search',
      placeholder: 'task',
      title: 'Filter by task name (exact)'
    });
    let typing: number | undefined;
    taskInput.addEventListener('input', () => {
      window.clearTimeout(typing);
      typing = window.setTimeout(() => this.setFilter({ task: taskInput.value.trim() }), 300);
    });
    this.agentSelect.addEventListener('change', () => this.setFilter({ agent: this.agentSelect.value }));
    this.moreButton = button('more', 'wiz-more', () => this.setFilter({ limit: this.filter.limit + PAGE }), 'Show more jobs');

    const section = (name: string, title: Node, ...body: Node[]): HTMLDetailsElement => {
      const d = h('details', { className: 'wiz-section', open: true, dataset: { section: name } }, h('summary', {}, title), ...body);
      return d;
    };
    append(
      this.node,
      h('div', { className: 'wiz-header' }, h('span', { className: 'wiz-title' }, 'Wiz'), this.conn),
      this.workspaceSelect,
      this.dbLabel,
      this.message,
      section('agents', this.agentsTitle, this.agentList),
      section(
        'jobs',
        h('span', {}, 'Jobs'),
        this.chips,
        h('div', { className: 'wiz-filters' }, taskInput, this.agentSelect),
        this.jobList,
        this.moreButton,
        this.detail
      ),
      section('schedules', this.schedulesTitle, this.scheduleList)
    );
    this.drawChips();
    this.drawAgentSelect();
    this.drawWorkspaces();
  }

  // -- lifecycle: poll only while visible ------------------------------------------------

  protected onAfterShow(msg: Message): void {
    super.onAfterShow(msg);
    this.start();
  }

  protected onAfterAttach(msg: Message): void {
    super.onAfterAttach(msg);
    if (this.isVisible) {
      this.start();
    }
  }

  protected onBeforeHide(msg: Message): void {
    super.onBeforeHide(msg);
    this.stop();
  }

  protected onBeforeDetach(msg: Message): void {
    this.stop();
    super.onBeforeDetach(msg);
  }

  dispose(): void {
    this.stop();
    super.dispose();
  }

  private start(): void {
    void this.poll();
    void this.loadWorkspaces();
    window.clearInterval(this.workspacesTimer);
    this.workspacesTimer = window.setInterval(() => void this.loadWorkspaces(), WORKSPACES_EVERY);
  }

  private stop(): void {
    window.clearInterval(this.workspacesTimer);
    this.workspacesTimer = undefined;
    this.abort?.abort();
    this.abort = null;
  }

  // -- which workspace ---------------------------------------------------------------------

  /** The id of the workspace shown (null: the server's default, before the list came). */
  get workspace(): string | null {
    return this.api.workspace;
  }

  /**
   * Follow the workspace of the kernel `kernelId` (the active notebook's; null: none).
   * Moving to another notebook forgets a workspace picked by hand.
   */
  followKernel(kernelId: string | null): void {
    if (kernelId !== this.kernel) {
      this.picked = false;
    }
    this.kernel = kernelId;
    void this.loadWorkspaces();
  }

  /** Fetch the workspaces the server knows, redraw the picker, and move to the one to show. */
  async loadWorkspaces(): Promise<void> {
    try {
      this.known = await this.api.workspaces();
    } catch (e) {
      return; // the long-poll reports an unreachable server
    }
    this.drawWorkspaces();
    const ids = new Set(this.known.workspaces.map(w => w.id));
    const own = this.kernel ? this.known.kernels[this.kernel] : undefined;
    let target = this.workspace;
    if (!this.picked && own) {
      target = own;
    } else if (!target || !ids.has(target)) {
      target = this.known.default; // gone (its kernel ended), or nothing chosen yet
    }
    if (target !== this.workspace) {
      this.switchTo(target);
    }
  }

  private drawWorkspaces(): void {
    const list = this.known ? this.known.workspaces : [];
    const current = this.workspace ?? this.known?.default ?? '';
    // the notebooks first (what the user knows), then where the file is (relative to the
    // server's root when it is under it)
    const options = list.map(w => {
      const names = w.notebooks.map(n => n.split('/').pop() || n).join(', ');
      const where = w.default ? `${w.label} (default)` : w.label;
      return h(
        'option',
        { value: w.id, title: w.path, dataset: { path: w.path, rel: w.rel || '' } },
        names ? `${names} · ${where}` : where
      );
    });
    this.workspaceSelect.replaceChildren(...(options.length ? options : [h('option', { value: '' }, 'default workspace')]));
    this.workspaceSelect.value = current;
    this.workspaceSelect.dataset.workspace = current;
  }

  /** Show workspace `id`: everything shown is fetched again from it. */
  private switchTo(id: string): void {
    if (id === this.workspace) {
      return;
    }
    this.api.workspace = id;
    this.workspaceSelect.value = id;
    this.workspaceSelect.dataset.workspace = id;
    this.selected = null;
    this.filter = { status: '', task: '', agent: '', limit: PAGE };
    this.counts = {};
    this.agents = [];
    this.jobList.replaceChildren();
    this.agentList.replaceChildren();
    this.scheduleList.replaceChildren();
    this.detail.hidden = true;
    this.drawChips();
    this.drawAgentSelect();
    this.onWorkspace?.(id);
    if (this.isVisible) {
      void this.poll(); // a new long-poll, on this workspace (the old one is aborted)
    }
  }

  private async poll(): Promise<void> {
    this.abort?.abort();
    const abort = new AbortController();
    this.abort = abort;
    const signal = abort.signal;
    const workspace = this.workspace;
    let backoff = 1000;
    // a fresh start always fetches everything: the token is forgotten
    this.token = null;
    try {
      while (!signal.aborted && !this.isDisposed) {
        let changes: IChanges;
        try {
          changes = await this.api.changes(this.token, POLL_TIMEOUT, signal);
        } catch (e) {
          if (signal.aborted) {
            break;
          }
          if (e instanceof APIError && e.status === 403) {
            await this.loadWorkspaces(); // its kernel ended: back to one the server knows
            if (this.workspace !== workspace) {
              break;
            }
          }
          this.setConn('offline', `cannot reach the Wiz API: ${(e as Error).message}; retrying`);
          await sleep(backoff);
          backoff = Math.min(backoff * 2, 15000);
          continue;
        }
        backoff = 1000;
        if (signal.aborted) {
          break; // another workspace is shown now
        }
        this.setConn(changes.paused ? 'paused' : 'live');
        this.dbLabel.textContent = shortPath(changes.db) + (changes.exists ? '' : ' (not created yet)');
        this.dbLabel.title = changes.db;
        this.counts = changes.counts;
        this.drawChips();
        if (changes.changed) {
          this.token = changes.token;
          const wait = this.lastRefresh + REFRESH_GAP - Date.now();
          if (wait > 0) {
            await sleep(wait);
          }
          this.lastRefresh = Date.now();
          await this.refresh();
        }
      }
    } finally {
      if (this.abort === abort) {
        this.abort = null;
      }
    }
  }

  /** Fetch everything shown again. */
  async refresh(): Promise<void> {
    await Promise.all([this.loadAgents(), this.loadJobs(), this.loadSchedules(), this.loadDetail()]);
  }

  // -- agents -----------------------------------------------------------------------------

  private async loadAgents(): Promise<void> {
    const workspace = this.workspace;
    let agents: IAgent[];
    try {
      agents = await this.api.agents();
    } catch (e) {
      return this.showError(e);
    }
    if (workspace !== this.workspace) {
      return; // another workspace is shown now
    }
    this.agents = agents;
    this.agentsTitle.textContent = `Agents (${this.agents.length})`;
    const items = this.agents.map(a => {
      const busy = (a.jobs.active || 0) + (a.jobs.waiting || 0);
      return h(
        'li',
        { className: 'wiz-agent', dataset: { agent: a.name }, title: a.goal || '' },
        h(
          'div',
          { className: 'wiz-row-main' },
          h('span', { className: 'wiz-name' }, a.name),
          badge(a.status || 'idle'),
          busy ? h('span', { className: 'wiz-muted' }, `${a.jobs.active || 0} active, ${a.jobs.waiting || 0} waiting`) : null,
          h(
            'span',
            { className: 'wiz-actions' },
            button('chat', 'wiz-chat', () => this.onChat(a.name), `Insert a %wiz chat ${a.name} cell in the notebook`),
            button('jobs', 'wiz-agent-jobs', () => this.setFilter({ agent: a.name }), `Show ${a.name}'s jobs`)
          )
        ),
        a.role ? h('div', { className: 'wiz-muted' }, a.role) : null,
        a.model ? h('div', { className: 'wiz-muted' }, `model: ${a.model}`) : null
      );
    });
    this.agentList.replaceChildren(...(items.length ? items : [h('li', { className: 'wiz-empty' }, 'no agents yet')]));
    this.drawAgentSelect();
  }

  private drawAgentSelect(): void {
    const names = new Set(this.agents.map(a => a.name));
    if (this.filter.agent) {
      names.add(this.filter.agent);
    }
    const options = [h('option', { value: '' }, 'any agent')];
    for (const n of [...names].sort()) {
      options.push(h('option', { value: n }, n));
    }
    this.agentSelect.replaceChildren(...options);
    this.agentSelect.value = this.filter.agent;
  }

  // -- jobs -------------------------------------------------------------------------------

  private setFilter(change: Partial<IJobFilter>): void {
    if (!('limit' in change)) {
      change.limit = PAGE;
    }
    this.filter = { ...this.filter, ...change };
    this.drawChips();
    this.drawAgentSelect();
    void this.loadJobs();
  }

  private drawChips(): void {
    const chip = (label: string, status: string, n?: number): HTMLButtonElement => {
      const selected = this.filter.status === status;
      const b = button(
        n === undefined ? label : `${label} ${n}`,
        `wiz-chip wiz-s-${status || 'all'}${selected ? ' wiz-selected' : ''}`,
        () => this.setFilter({ status: selected ? '' : status })
      );
      b.dataset.status = status || 'all';
      b.setAttribute('aria-pressed', String(selected));
      return b;
    };
    const total = Object.values(this.counts).reduce((a, b) => a + b, 0);
    this.chips.replaceChildren(chip('all', '', total), ...STATUSES.map(s => chip(s, s, this.counts[s] || 0)));
  }

  private async loadJobs(): Promise<void> {
    const filter = this.filter;
    const workspace = this.workspace;
    let page;
    try {
      page = await this.api.jobs(filter);
    } catch (e) {
      return this.showError(e);
    }
    if (filter !== this.filter || workspace !== this.workspace) {
      return; // a newer filter's (or workspace's) answer is on its way
    }
    // a reply box being typed in moves to the new row: give it its focus back
    const typing = document.activeElement;
    const focused = typing instanceof HTMLInputElement || typing instanceof HTMLTextAreaElement ? typing : null;
    const selection = focused ? [focused.selectionStart, focused.selectionEnd] : null;
    const items = page.jobs.map(j => this.jobItem(j));
    this.jobList.replaceChildren(...(items.length ? items : [h('li', { className: 'wiz-empty' }, 'no jobs')]));
    this.moreButton.hidden = !page.more;
    const waiting = new Set(page.jobs.filter(j => j.status === 'awaiting_input').map(j => j.id));
    for (const id of [...this.asks.keys()]) {
      if (!waiting.has(id)) {
        this.asks.delete(id);
      }
    }
    if (focused && focused.isConnected && document.activeElement !== focused && this.jobList.contains(focused)) {
      focused.focus();
      if (selection && selection[0] !== null && selection[1] !== null) {
        focused.setSelectionRange(selection[0], selection[1]);
      }
    }
  }

  /**
   * What a job awaiting input asks, with its controls: the tool's name and arguments with
   * *Approve* and *Deny* (and the reason, which the model reads), or the question with a
   * reply box. The model wrote these values: they are set as text, never as HTML.
   */
  private askItem(j: IJobRow, request: IRequest): HTMLElement {
    const key = `${JSON.stringify(request)}|${j.input?.since ?? ''}`;
    const kept = this.asks.get(j.id);
    if (kept && kept.key === key) {
      return kept.node;
    }
    const error = h('div', { className: 'wiz-ask-error', role: 'alert' });
    const box = h('div', { className: 'wiz-ask', dataset: { kind: request.kind, jobId: String(j.id) } });
    const send = (call: () => Promise<unknown>): Promise<void> => this.reply(j.id, box, error, call);
    if (request.kind === 'question') {
      const text = h('textarea', { className: 'wiz-ask-answer', rows: 2, placeholder: 'Your answer (Enter to send)' });
      const answer = button('Answer', 'wiz-reply', () => {
        if (!text.value.trim()) {
          error.textContent = 'write an answer first';
          return text.focus();
        }
        void send(() => this.api.answer(j.id, text.value.trim()));
      }, `Answer job ${j.id}'s question`);
      text.addEventListener('keydown', ev => {
        if (ev.key === 'Enter' && !ev.shiftKey) {
          ev.preventDefault();
          answer.click();
        }
      });
      append(box, h('div', { className: 'wiz-ask-question' }, request.question ?? ''), h('div', { className: 'wiz-ask-row' }, text, answer));
    } else {
      const reason = h('input', { className: 'wiz-ask-reason', type: 'text', placeholder: 'reason to deny (the agent reads it)' });
      const approve = button('Approve', 'wiz-approve', () => void send(() => this.api.approve(j.id)), `Run ${request.tool ?? 'the tool'} once and go on`);
      const deny = button('Deny', 'wiz-deny', () => {
        if (!reason.value.trim()) {
          error.textContent = 'say why first: the agent reads the reason';
          return reason.focus();
        }
        void send(() => this.api.deny(j.id, reason.value.trim()));
      }, 'Refuse the call; the reason goes back to the model');
      reason.addEventListener('keydown', ev => {
        if (ev.key === 'Enter') {
          ev.preventDefault();
          deny.click();
        }
      });
      append(
        box,
        h('div', { className: 'wiz-ask-call' }, h('span', { className: 'wiz-muted' }, 'approve '), h('code', { className: 'wiz-ask-tool' }, request.tool ?? '?')),
        request.args === undefined ? null : h('pre', { className: 'wiz-pre wiz-ask-args' }, fmtJSON(request.args, 2000)),
        h('div', { className: 'wiz-ask-row' }, approve, reason, deny)
      );
    }
    box.append(error);
    // typing and clicking here is not opening the job's detail (the row's click and Enter)
    box.addEventListener('click', ev => ev.stopPropagation());
    box.addEventListener('keydown', ev => ev.stopPropagation());
    this.asks.set(j.id, { key, node: box });
    return box;
  }

  private async reply(id: number, box: HTMLElement, error: HTMLElement, call: () => Promise<unknown>): Promise<void> {
    const controls = [...box.querySelectorAll<HTMLButtonElement>('button')];
    controls.forEach(b => (b.disabled = true));
    error.textContent = '';
    try {
      await call();
      this.asks.delete(id);
    } catch (e) {
      // here, and above the list: the row goes if another process replied first
      error.textContent = e instanceof Error ? e.message : String(e);
      controls.forEach(b => (b.disabled = false));
      this.showError(e);
    }
    // the long-poll brings the change too; fetching now makes the click feel immediate
    await Promise.all([this.loadJobs(), this.loadDetail()]);
  }

  private jobItem(j: IJobRow): HTMLLIElement {
    const actions = h('span', { className: 'wiz-actions' });
    if (LIVE.has(j.status)) {
      actions.append(button('cancel', 'wiz-cancel', () => this.act(this.api.jobAction(j.id, 'cancel')), `Cancel job ${j.id}`));
      if (j.status !== 'active') {
        actions.append(
          button('▲', 'wiz-up', () => this.act(this.api.setPriority(j.id, j.priority + 1)), `Raise priority (now ${j.priority})`),
          button('▼', 'wiz-down', () => this.act(this.api.setPriority(j.id, j.priority - 1)), `Lower priority (now ${j.priority})`)
        );
      }
    } else if (j.status === 'failed' || j.status === 'cancelled') {
      actions.append(button('retry', 'wiz-retry', () => this.act(this.api.jobAction(j.id, 'retry')), `Retry job ${j.id}`));
    }
    const li = h(
      'li',
      {
        className: `wiz-job${j.id === this.selected ? ' wiz-selected' : ''}`,
        dataset: { jobId: String(j.id), status: j.status },
        tabIndex: 0,
        title: j.error || ''
      },
      h(
        'div',
        { className: 'wiz-row-main' },
        h('span', { className: 'wiz-id' }, `#${j.id}`),
        h('span', { className: 'wiz-name' }, j.task),
        j.agent ? h('span', { className: 'wiz-muted' }, `· ${j.agent}`) : null,
        badge(j.status),
        actions
      ),
      h(
        'div',
        { className: 'wiz-row-sub' },
        progressBar(j.progress),
        h('span', { className: 'wiz-muted' }, j.started_at ? `${fmtTime(j.started_at)} · ${fmtDuration(j.started_at, j.finished_at)}` : `added ${fmtTime(j.created_at)}`),
        j.priority ? h('span', { className: 'wiz-muted' }, `priority ${j.priority}`) : null,
        j.status === 'failed' && j.error ? h('span', { className: 'wiz-error-text' }, j.error) : null
      ),
      j.status === 'awaiting_input' && j.input?.request ? this.askItem(j, j.input.request) : null
    );
    const open = (): void => {
      this.select(j.id === this.selected ? null : j.id);
    };
    li.addEventListener('click', open);
    li.addEventListener('keydown', ev => {
      if (ev.key === 'Enter') {
        open();
      }
    });
    return li;
  }

  /** Show job `id`'s detail (a notification's "Show job" action). */
  showJob(id: number): void {
    this.select(id);
  }

  private select(id: number | null): void {
    this.selected = id;
    for (const li of this.jobList.querySelectorAll<HTMLElement>('.wiz-job')) {
      li.classList.toggle('wiz-selected', li.dataset.jobId === String(id));
    }
    void this.loadDetail();
  }

  private async act(action: Promise<unknown>): Promise<void> {
    try {
      await action;
    } catch (e) {
      this.showError(e);
    }
    // the long-poll brings the change too; fetching now makes the click feel immediate
    await Promise.all([this.loadJobs(), this.loadDetail(), this.loadSchedules()]);
  }

  // -- a job's detail ---------------------------------------------------------------------

  private async loadDetail(): Promise<void> {
    const id = this.selected;
    if (id === null) {
      this.detail.hidden = true;
      this.detail.replaceChildren();
      return;
    }
    const workspace = this.workspace;
    let d: IJobDetail;
    try {
      d = await this.api.job(id);
    } catch (e) {
      if (e instanceof APIError && e.status === 404) {
        this.selected = null;
        this.detail.hidden = true;
        return;
      }
      return this.showError(e);
    }
    if (id !== this.selected || workspace !== this.workspace) {
      return;
    }
    this.detail.hidden = false;
    this.detail.dataset.jobId = String(id);
    this.detail.replaceChildren(...this.detailParts(d));
  }

  private detailParts(d: IJobDetail): Node[] {
    const j = d.job;
    const fields: [string, string][] = [
      ['status', j.fail_reason ? `${j.status} (${j.fail_reason})` : j.status],
      ['agent', j.agent || ''],
      ['priority', String(j.priority)],
      ['attempts', `${j.attempts_made} / ${j.attempts}`],
      ['added', fmtTime(j.created_at)],
      ['started', fmtTime(j.started_at)],
      ['finished', fmtTime(j.finished_at)],
      ['took', j.started_at ? fmtDuration(j.started_at, j.finished_at) : ''],
      ['parent', j.parent_id ? `#${j.parent_id}` : '']
    ];
    const table = h('dl', { className: 'wiz-fields' });
    for (const [k, v] of fields) {
      if (v) {
        table.append(h('dt', {}, k), h('dd', {}, v));
      }
    }
    const parts: Node[] = [
      h(
        'div',
        { className: 'wiz-detail-head' },
        h('span', { className: 'wiz-title' }, `Job #${j.id} · ${j.task}`),
        button('×', 'wiz-close', () => this.select(null), 'Close the detail')
      ),
      table
    ];
    if (j.error) {
      parts.push(h('pre', { className: 'wiz-pre wiz-error-text' }, j.error));
    }
    const nb = d.notebook;
    if (nb) {
      const rel = nb.rel;
      const open =
        rel && this.onOpen
          ? button('Open executed notebook', 'wiz-open-notebook', () => this.onOpen?.(rel), nb.path)
          : h('code', { className: 'wiz-notebook-path', title: 'outside the server root: open it from there' }, nb.path);
      parts.push(h('div', { className: 'wiz-subtitle' }, 'executed notebook'), open);
    }
    parts.push(h('div', { className: 'wiz-subtitle' }, 'data'), h('pre', { className: 'wiz-pre' }, fmtJSON(j.data)));
    if (j.result !== null && j.result !== undefined) {
      parts.push(h('div', { className: 'wiz-subtitle' }, 'result'), h('pre', { className: 'wiz-pre wiz-result' }, fmtJSON(j.result)));
    }
    if (d.activity) {
      parts.push(...this.activityParts(d.activity));
    }
    const timeline = h('ol', { className: 'wiz-timeline' });
    for (const e of d.events) {
      const payload = Object.keys(e.data || {}).length ? fmtJSON(e.data, 300, 0) : '';
      timeline.append(
        h(
          'li',
          { dataset: { event: e.event } },
          h('span', { className: 'wiz-time' }, fmtTime(e.at)),
          h('span', { className: 'wiz-event' }, e.event),
          payload ? h('span', { className: 'wiz-muted wiz-payload' }, payload) : null
        )
      );
    }
    parts.push(h('div', { className: 'wiz-subtitle' }, `events (${d.events.length})`), timeline);
    return parts;
  }

  private activityParts(a: IActivity): Node[] {
    const parts: Node[] = [
      h('div', { className: 'wiz-subtitle' }, `agent ${a.agent || ''}${a.phase ? ` · ${a.phase}` : ''}${a.steps ? ` · ${a.steps} steps` : ''}`)
    ];
    const plan = a.plan as any;
    const steps: unknown[] = Array.isArray(plan) ? plan : plan && Array.isArray(plan.steps) ? plan.steps : [];
    if (plan && typeof plan === 'object' && typeof plan.goal === 'string') {
      parts.push(h('div', { className: 'wiz-plan-goal' }, plan.goal));
    }
    if (steps.length) {
      parts.push(h('ol', { className: 'wiz-plan' }, ...steps.map(s => h('li', {}, typeof s === 'string' ? s : fmtJSON(s, 300)))));
    } else if (plan) {
      parts.push(h('pre', { className: 'wiz-pre wiz-plan' }, fmtJSON(plan)));
    }
    if (Array.isArray(a.criteria) && a.criteria.length) {
      parts.push(
        h('div', { className: 'wiz-subtitle' }, 'validation criteria'),
        h('ul', { className: 'wiz-criteria' }, ...a.criteria.map(c => h('li', {}, typeof c === 'string' ? c : fmtJSON(c, 300))))
      );
    }
    const calls = Array.isArray(a.tool_calls) ? (a.tool_calls as any[]) : [];
    if (calls.length) {
      const list = h('ol', { className: 'wiz-tools' });
      for (const c of calls) {
        const name = c && typeof c === 'object' ? String(c.name ?? c.tool ?? 'tool') : String(c);
        const args = c && typeof c === 'object' && c.args !== undefined ? fmtJSON(c.args, 300, 0) : '';
        const outcome = c && typeof c === 'object' ? (c.error ? `error: ${fmtJSON(c.error, 300)}` : c.result !== undefined ? fmtJSON(c.result, 300) : '') : '';
        list.append(
          h(
            'li',
            { className: c && c.error ? 'wiz-tool wiz-tool-error' : 'wiz-tool' },
            h('span', { className: 'wiz-name' }, name),
            args ? h('code', { className: 'wiz-args' }, args) : null,
            outcome ? h('div', { className: 'wiz-muted wiz-outcome' }, `→ ${outcome}`) : null
          )
        );
      }
      parts.push(h('div', { className: 'wiz-subtitle' }, `tool calls (${calls.length})`), list);
    }
    if (a.validation !== null && a.validation !== undefined && !(Array.isArray(a.validation) && !a.validation.length)) {
      parts.push(h('div', { className: 'wiz-subtitle' }, 'validation'), h('pre', { className: 'wiz-pre' }, fmtJSON(a.validation)));
    }
    return parts;
  }

  // -- schedules --------------------------------------------------------------------------

  private async loadSchedules(): Promise<void> {
    const workspace = this.workspace;
    let schedules: ISchedule[];
    try {
      schedules = await this.api.schedules();
    } catch (e) {
      return this.showError(e);
    }
    if (workspace !== this.workspace) {
      return;
    }
    this.schedulesTitle.textContent = `Schedules (${schedules.length})`;
    const items = schedules.map(s => {
      const toggle =
        s.status === 'active'
          ? button('pause', 'wiz-pause', () => this.act(this.api.scheduleAction(s.id, 'pause')), `Pause ${s.name}`)
          : s.status === 'paused'
            ? button('resume', 'wiz-resume', () => this.act(this.api.scheduleAction(s.id, 'resume')), `Resume ${s.name}`)
            : null;
      const hook = s.kind === 'webhook' ? this.api.hookUrl(String(s.trigger.name ?? '')) : '';
      return h(
        'li',
        { className: 'wiz-schedule', dataset: { scheduleId: String(s.id), status: s.status } },
        h('div', { className: 'wiz-row-main' }, h('span', { className: 'wiz-name' }, s.name), badge(s.status), h('span', { className: 'wiz-actions' }, toggle)),
        h(
          'div',
          { className: 'wiz-row-sub wiz-muted' },
          `${s.task} · ${s.description} · runs ${s.run_count}${s.fail_count ? `, failed ${s.fail_count}` : ''}${s.next_run && s.status === 'active' ? ` · next ${fmtTime(s.next_run)}` : ''}`
        ),
        hook ? h('div', { className: 'wiz-row-sub' }, h('code', { className: 'wiz-hook', title: 'POST here to fire it' }, hook)) : null
      );
    });
    this.scheduleList.replaceChildren(...(items.length ? items : [h('li', { className: 'wiz-empty' }, 'no schedules')]));
  }

  // -- status line ------------------------------------------------------------------------

  private setConn(state: 'live' | 'paused' | 'offline', message?: string): void {
    this.conn.dataset.state = state;
    this.conn.textContent = state === 'paused' ? 'live · queue paused' : state;
    if (message) {
      this.showMessage(message);
    } else if (state !== 'offline' && this.message.dataset.kind === 'offline') {
      this.showMessage('');
    }
  }

  private showError(e: unknown): void {
    if (e instanceof APIError && e.status === 403 && this.known) {
      void this.loadWorkspaces(); // the workspace went away with its kernel
    }
    this.showMessage(e instanceof Error ? e.message : String(e), 'error');
  }

  private showMessage(text: string, kind = 'offline'): void {
    window.clearTimeout(this.messageTimer);
    this.message.textContent = text;
    this.message.dataset.kind = kind;
    if (text && kind === 'error') {
      this.messageTimer = window.setTimeout(() => this.showMessage(''), 8000);
    }
  }
}
