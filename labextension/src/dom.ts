// Building DOM without HTML strings: every value from the server becomes a text node.

type Child = Node | string | number | null | undefined | false;

/**
 * `h('span', { className: 'x', dataset: { id: '3' } }, 'text', child)`.
 * Properties are assigned (never parsed as HTML); strings become text nodes.
 */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  props: Partial<Omit<HTMLElementTagNameMap[K], 'dataset' | 'style'>> & {
    dataset?: Record<string, string>;
    title?: string;
  } = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  const { dataset, ...rest } = props;
  Object.assign(el, rest);
  if (dataset) {
    for (const [k, v] of Object.entries(dataset)) {
      el.dataset[k] = v;
    }
  }
  append(el, ...children);
  return el;
}

export function append(el: Element, ...children: Child[]): void {
  for (const c of children) {
    if (c === null || c === undefined || c === false) {
      continue;
    }
    el.append(typeof c === 'number' ? String(c) : c);
  }
}

export function button(label: string, className: string, onClick: (ev: MouseEvent) => void, title?: string): HTMLButtonElement {
  const b = h('button', { className: `wiz-btn ${className}`, type: 'button' }, label);
  if (title) {
    b.title = title;
  }
  b.addEventListener('click', ev => {
    ev.stopPropagation();
    onClick(ev);
  });
  return b;
}

export function badge(status: string | null | undefined): HTMLSpanElement {
  const s = status || 'unknown';
  return h('span', { className: `wiz-badge wiz-s-${s.replace(/[^a-z-]/gi, '')}` }, s);
}

export function fmtTime(t: number | null | undefined): string {
  if (!t) {
    return '';
  }
  const d = new Date(t * 1000);
  const today = new Date();
  return d.toDateString() === today.toDateString() ? d.toLocaleTimeString() : d.toLocaleString();
}

export function fmtDuration(start: number | null, end: number | null): string {
  if (!start) {
    return '';
  }
  const s = Math.max(0, (end || Date.now() / 1000) - start);
  if (s < 1) {
    return `${Math.round(s * 1000)} ms`;
  }
  return s < 120 ? `${s.toFixed(1)} s` : `${Math.round(s / 60)} min`;
}

/** Pretty JSON for a <pre>; long values are cut (the full value is one click away in a notebook). */
export function fmtJSON(value: unknown, max = 4000, indent = 2): string {
  let text: string;
  try {
    text = typeof value === 'string' ? value : JSON.stringify(value, null, indent);
  } catch {
    text = String(value);
  }
  if (text === undefined) {
    text = String(value);
  }
  return text.length > max ? `${text.slice(0, max)}\n… (${text.length - max} more characters)` : text;
}

export function progressBar(p: unknown): Node | null {
  if (typeof p === 'number') {
    const fill = h('div', { className: 'wiz-progress-fill' });
    fill.style.width = `${Math.max(0, Math.min(100, p))}%`;
    return h('div', { className: 'wiz-progress', title: `${p}%` }, fill);
  }
  // {done, of}: steps of a whole, such as a notebook job's cells
  const steps = p as { done?: unknown; of?: unknown } | null;
  if (steps && typeof steps.done === 'number' && typeof steps.of === 'number' && steps.of > 0) {
    const fill = h('div', { className: 'wiz-progress-fill' });
    fill.style.width = `${Math.max(0, Math.min(100, (100 * steps.done) / steps.of))}%`;
    const label = `${steps.done}/${steps.of}`;
    return h('div', { className: 'wiz-progress', title: label }, fill);
  }
  if (p && typeof p === 'object') {
    return h('span', { className: 'wiz-progress-text' }, fmtJSON(p, 80));
  }
  return null;
}

/** The end of a long path, which says the most ("…/project/.wiz/wiz.db"). */
export function shortPath(path: string, max = 36): string {
  return path.length > max ? `…${path.slice(path.length - max + 1)}` : path;
}
