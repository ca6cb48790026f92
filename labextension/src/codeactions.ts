// Code blocks of agents' answers into cells: "Insert below", "Replace active cell" (after a
// diff of the cell against the new code) and "Copy".
//
// Two kinds of answers show code blocks. A `%wiz ask` answer is a plain, script-free HTML
// output (`<div class="wiz-answer">`): this extension finds its <pre> blocks as they appear
// and adds the buttons. The chat panel (an anywidget) adds its own buttons and, since a
// widget has no JupyterLab API, says what it wants with a bubbling DOM event, `wiz:code`
// ({action: "insert" | "replace", code}); this extension announces that it listens by
// setting <body data-wiz-code-actions="1">, and the panel shows only Copy without it.

import type { JupyterFrontEnd } from '@jupyterlab/application';
import { Dialog, showDialog } from '@jupyterlab/apputils';
import type { ISignal } from '@lumino/signaling';
import { Widget } from '@lumino/widgets';

import { h } from './dom';

export const CODE_EVENT = 'wiz:code';

export interface ICodeRequest {
  action: 'insert' | 'replace';
  code: string;
}

// The notebook through its widgets' public shape (see index.ts: no @jupyterlab/notebook).
interface ICellLike {
  node: HTMLElement;
  model: { type: string; sharedModel: { getSource(): string; setSource(source: string): void } };
}
interface INotebookLike {
  widgets: ReadonlyArray<ICellLike>;
  activeCell: ICellLike | null;
  activeCellIndex: number;
  activeCellChanged: ISignal<unknown, ICellLike | null>;
  model: { sharedModel: { insertCell(index: number, cell: { cell_type: string; source: string }): unknown } } | null;
  scrollToItem?(index: number): Promise<void>;
}
interface INotebookPanelLike extends Widget {
  content: INotebookLike;
}

function asNotebookPanel(w: Widget | null): INotebookPanelLike | null {
  const panel = w as INotebookPanelLike | null;
  return panel && panel.hasClass('jp-NotebookPanel') && panel.content ? panel : null;
}

// -- which cell was active before the current one (a click in a chat panel makes the
// panel's own cell active; "Replace active cell" means the cell the user was working in)

const tracked = new WeakSet<INotebookLike>();
const previous = new WeakMap<INotebookLike, ICellLike>();
const current = new WeakMap<INotebookLike, ICellLike>();

function track(nb: INotebookLike): void {
  if (tracked.has(nb)) {
    return;
  }
  tracked.add(nb);
  if (nb.activeCell) {
    current.set(nb, nb.activeCell);
  }
  nb.activeCellChanged.connect((_, cell) => {
    const was = current.get(nb);
    if (was && was !== cell) {
      previous.set(nb, was);
    }
    if (cell) {
      current.set(nb, cell);
    }
  });
}

/** The notebook that holds `target` (and the index of its cell), else the current one. */
function locate(app: JupyterFrontEnd, target: EventTarget | null): { panel: INotebookPanelLike | null; index: number } {
  if (target instanceof Node) {
    for (const w of app.shell.widgets('main')) {
      const panel = asNotebookPanel(w);
      if (panel && panel.node.contains(target)) {
        return { panel, index: panel.content.widgets.findIndex(c => c.node.contains(target)) };
      }
    }
  }
  return { panel: asNotebookPanel(app.shell.currentWidget), index: -1 };
}

// -- the diff shown before a cell is replaced

type DiffLine = { op: ' ' | '-' | '+'; text: string };

/** A line diff of `a` against `b` (longest common subsequence; cells are short). */
export function diffLines(a: string, b: string): DiffLine[] {
  const x = a.split('\n');
  const y = b.split('\n');
  if (x.length * y.length > 4_000_000) {
    return [...x.map(text => ({ op: '-' as const, text })), ...y.map(text => ({ op: '+' as const, text }))];
  }
  // lcs[i][j]: the length of the longest common subsequence of x[i:] and y[j:]
  const lcs = Array.from({ length: x.length + 1 }, () => new Uint32Array(y.length + 1));
  for (let i = x.length - 1; i >= 0; i--) {
    for (let j = y.length - 1; j >= 0; j--) {
      lcs[i][j] = x[i] === y[j] ? lcs[i + 1][j + 1] + 1 : Math.max(lcs[i + 1][j], lcs[i][j + 1]);
    }
  }
  const out: DiffLine[] = [];
  let i = 0;
  let j = 0;
  while (i < x.length && j < y.length) {
    if (x[i] === y[j]) {
      out.push({ op: ' ', text: x[i++] });
      j++;
    } else if (lcs[i + 1][j] >= lcs[i][j + 1]) {
      out.push({ op: '-', text: x[i++] });
    } else {
      out.push({ op: '+', text: y[j++] });
    }
  }
  x.slice(i).forEach(text => out.push({ op: '-', text }));
  y.slice(j).forEach(text => out.push({ op: '+', text }));
  return out;
}

function diffWidget(before: string, after: string): Widget {
  const kind = { ' ': 'wiz-diff-same', '-': 'wiz-diff-del', '+': 'wiz-diff-add' };
  const lines = diffLines(before, after).map(d => h('div', { className: kind[d.op] }, `${d.op} ${d.text}`));
  return new Widget({ node: h('pre', { className: 'wiz-diff' }, ...lines) });
}

// -- the two actions

async function insertBelow(app: JupyterFrontEnd, target: EventTarget | null, code: string): Promise<void> {
  const { panel, index } = locate(app, target);
  const nb = panel?.content;
  if (!nb || !nb.model) {
    return;
  }
  // below the cell that shows the answer; from elsewhere, below the active cell
  const at = (index >= 0 ? index : nb.activeCellIndex) + 1;
  nb.model.sharedModel.insertCell(at, { cell_type: 'code', source: code }); // never run
  nb.activeCellIndex = at;
  await nb.scrollToItem?.(at);
}

async function replaceActive(app: JupyterFrontEnd, target: EventTarget | null, code: string): Promise<void> {
  const { panel, index } = locate(app, target);
  const nb = panel?.content;
  if (!nb) {
    return;
  }
  track(nb);
  let cell = nb.activeCell;
  if (cell && index >= 0 && nb.widgets[index] === cell) {
    // the active cell is the one showing the answer: the user worked in the one before
    const before = previous.get(nb);
    cell = before && nb.widgets.includes(before) ? before : null;
  }
  if (!cell) {
    await showDialog({
      title: 'Replace which cell?',
      body: 'Select the cell to replace, then click "Replace active cell" again.',
      buttons: [Dialog.okButton()]
    });
    return;
  }
  const number = nb.widgets.indexOf(cell) + 1;
  const result = await showDialog({
    title: `Replace cell ${number} with this code?`,
    body: diffWidget(cell.model.sharedModel.getSource(), code),
    buttons: [Dialog.cancelButton(), Dialog.warnButton({ label: 'Replace' })]
  });
  if (result.button.accept && nb.widgets.includes(cell)) {
    cell.model.sharedModel.setSource(code); // never run
  }
}

// -- buttons on `%wiz ask` answers (the chat panel draws its own)

async function copyText(text: string): Promise<boolean> {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    const area = h('textarea', { value: text });
    area.style.position = 'fixed';
    area.style.opacity = '0';
    document.body.append(area);
    area.select();
    let ok = false;
    try {
      ok = document.execCommand('copy');
    } catch {
      ok = false;
    }
    area.remove();
    return ok;
  }
}

function codeOf(pre: Element): string {
  return (pre.textContent || '').replace(/\n$/, '');
}

function actionButton(label: string, cls: string, onClick: (b: HTMLButtonElement) => void): HTMLButtonElement {
  const b = h('button', { className: `wiz-code-btn ${cls}`, type: 'button' }, label);
  // the notebook makes the cell under a mousedown (or a focus) active: keep the active cell
  b.addEventListener('mousedown', ev => {
    ev.preventDefault();
    ev.stopPropagation();
  });
  b.addEventListener('click', ev => {
    ev.preventDefault();
    ev.stopPropagation();
    onClick(b);
  });
  return b;
}

function decorate(pre: HTMLElement): void {
  if (pre.dataset.wizCode) {
    return;
  }
  pre.dataset.wizCode = '1';
  const send = (action: ICodeRequest['action']): boolean =>
    pre.dispatchEvent(new CustomEvent<ICodeRequest>(CODE_EVENT, { bubbles: true, detail: { action, code: codeOf(pre) } }));
  const bar = h(
    'div',
    { className: 'wiz-code-actions' },
    actionButton('Insert below', 'wiz-code-insert', () => send('insert')),
    actionButton('Replace active cell', 'wiz-code-replace', () => send('replace')),
    actionButton('Copy', 'wiz-code-copy', async b => {
      b.textContent = (await copyText(codeOf(pre))) ? 'Copied' : 'Copy failed';
      setTimeout(() => (b.textContent = 'Copy'), 1500);
    })
  );
  pre.after(bar);
}

function decorateAnswersIn(node: Node): void {
  if (!(node instanceof Element)) {
    return;
  }
  const inside = node.closest('.wiz-answer');
  const answers = inside ? [inside] : Array.from(node.querySelectorAll('.wiz-answer'));
  for (const answer of answers) {
    answer.querySelectorAll<HTMLElement>('pre').forEach(decorate);
  }
}

/** Listen for `wiz:code` requests, add the buttons to answers, and say so on <body>. */
export function activateCodeActions(app: JupyterFrontEnd): void {
  document.addEventListener(CODE_EVENT, ev => {
    const detail = (ev as CustomEvent<ICodeRequest>).detail;
    if (!detail || typeof detail.code !== 'string') {
      return;
    }
    ev.stopPropagation();
    if (detail.action === 'insert') {
      void insertBelow(app, ev.target, detail.code);
    } else if (detail.action === 'replace') {
      void replaceActive(app, ev.target, detail.code);
    }
  });
  const follow = (): void => {
    const panel = asNotebookPanel(app.shell.currentWidget);
    if (panel) {
      track(panel.content);
    }
  };
  app.shell.currentChanged?.connect(follow);
  follow();
  new MutationObserver(records => {
    for (const r of records) {
      r.addedNodes.forEach(decorateAnswersIn);
    }
  }).observe(document.body, { childList: true, subtree: true });
  decorateAnswersIn(document.body);
  document.body.dataset.wizCodeActions = '1';
}
