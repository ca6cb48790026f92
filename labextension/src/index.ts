// wiz-jupyter: the Wiz sidebar, its palette commands, and answers' code into cells.

import { ILayoutRestorer, JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { ICommandPalette, InputDialog } from '@jupyterlab/apputils';
import { LabIcon } from '@jupyterlab/ui-components';
import { Widget } from '@lumino/widgets';
import type { ISignal } from '@lumino/signaling';

import { WizAPI } from './api';
import { activateCodeActions } from './codeactions';
import { Notifier } from './notifier';
import { WizSidebar } from './sidebar';

const SIDEBAR_ID = 'wiz-sidebar';

export const CommandIDs = {
  open: 'wiz:open-sidebar',
  openJob: 'wiz:open-job',
  chat: 'wiz:insert-chat'
};

const wizIcon = new LabIcon({
  name: 'wiz-jupyter:wiz',
  svgstr:
    '<svg xmlns="http://www.w3.org/2000/svg" width="16" viewBox="0 0 24 24">' +
    '<path class="jp-icon3" fill="#616161" d="M7.5 5.6 10 7 8.6 4.5 10 2 7.5 3.4 5 2l1.4 2.5L5 7zm12 9.8L17 14l1.4 2.5L17 19l2.5-1.4L22 19l-1.4-2.5L22 14zM22 2l-2.5 1.4L17 2l1.4 2.5L17 7l2.5-1.4L22 7l-1.4-2.5zm-7.63 5.29a.996.996 0 0 0-1.41 0L1.29 18.96a.996.996 0 0 0 0 1.41l2.34 2.34c.39.39 1.02.39 1.41 0L16.7 11.05a.996.996 0 0 0 0-1.41zm-1.03 5.49-2.12-2.12 2.44-2.44 2.12 2.12z"/>' +
    '</svg>'
});

// The notebook is reached through its widget's public shape, not through
// @jupyterlab/notebook: this extension then depends on fewer core packages.
interface ICellLike {
  model: { type: string; sharedModel: { getSource(): string; setSource(source: string): void } };
}
interface INotebookPanelLike extends Widget {
  content: { activeCell: ICellLike | null };
}

// A notebook's (or console's) session, through its public shape as well.
interface ISessionContextLike {
  session: { kernel: { id: string } | null } | null;
  kernelChanged: ISignal<unknown, unknown>;
  statusChanged: ISignal<unknown, string>;
}

function sessionOf(w: Widget | null): ISessionContextLike | null {
  const context = w && (w as unknown as { sessionContext?: ISessionContextLike }).sessionContext;
  return context && context.kernelChanged && context.statusChanged ? context : null;
}

/**
 * Tell the sidebar the kernel of the active notebook whenever it may have changed: another
 * notebook becomes current, its kernel changes, or its kernel goes idle (a cell such as
 * `%load_ext wiz_jupyter` may just have announced a workspace).
 */
function followActiveKernel(app: JupyterFrontEnd, sidebar: WizSidebar): void {
  let watched: ISessionContextLike | null = null;
  const tell = (): void => sidebar.followKernel(watched?.session?.kernel?.id ?? null);
  const onStatus = (_: unknown, status: string): void => {
    if (status === 'idle') {
      tell();
    }
  };
  const onCurrent = (): void => {
    const context = sessionOf(app.shell.currentWidget);
    if (!context || context === watched) {
      return; // a text file or the launcher: keep following the last notebook
    }
    if (watched) {
      watched.kernelChanged.disconnect(tell);
      watched.statusChanged.disconnect(onStatus);
    }
    watched = context;
    context.kernelChanged.connect(tell);
    context.statusChanged.connect(onStatus);
    tell();
  };
  app.shell.currentChanged?.connect(onCurrent);
  onCurrent();
}

function currentNotebook(app: JupyterFrontEnd): INotebookPanelLike | null {
  const w = app.shell.currentWidget as INotebookPanelLike | null;
  return w && w.hasClass('jp-NotebookPanel') && w.content ? w : null;
}

/** An agent name as one shell-style word for the `%wiz` magic's parser. */
export function magicWord(name: string): string {
  return /^[\w.@-]+$/.test(name) ? name : `'${name.replace(/'/g, `'"'"'`)}'`;
}

async function insertChatCell(app: JupyterFrontEnd, agent: string): Promise<boolean> {
  const panel = currentNotebook(app);
  if (!panel) {
    return false;
  }
  const source = `%wiz chat ${magicWord(agent)}`;
  const active = panel.content.activeCell;
  // an empty code cell is used as it is; otherwise a new one goes below the active cell
  if (!(active && active.model.type === 'code' && active.model.sharedModel.getSource().trim() === '')) {
    await app.commands.execute('notebook:insert-cell-below');
    await app.commands.execute('notebook:change-cell-to-code');
  }
  panel.content.activeCell?.model.sharedModel.setSource(source);
  app.shell.activateById(panel.id);
  return true;
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'wiz-jupyter:plugin',
  description:
    "The Wiz sidebar: a workspace's agents, a live job board and its schedules; notifications when jobs end.",
  autoStart: true,
  optional: [ICommandPalette, ILayoutRestorer],
  activate: (app: JupyterFrontEnd, palette: ICommandPalette | null, restorer: ILayoutRestorer | null) => {
    // code blocks of agents' answers: Insert below / Replace active cell / Copy
    activateCodeActions(app);
    const api = new WizAPI();
    // finished jobs that asked to be announced (notify=True) become JupyterLab notifications;
    // the notifier has its own API client, as it watches whatever workspace the sidebar shows
    const notifier = new Notifier({
      api: new WizAPI(),
      openJob: id => void app.commands.execute(CommandIDs.openJob, { id })
    });
    const sidebar = new WizSidebar({
      api,
      onChat: agent => void app.commands.execute(CommandIDs.chat, { agent }),
      onOpen: path => void app.commands.execute('docmanager:open', { path }),
      onWorkspace: id => notifier.setWorkspace(id)
    });
    sidebar.id = SIDEBAR_ID;
    sidebar.title.icon = wizIcon;
    sidebar.title.caption = 'Wiz: agents, jobs and schedules';
    app.shell.add(sidebar, 'left', { rank: 650 });
    if (restorer) {
      restorer.add(sidebar, SIDEBAR_ID);
    }

    app.commands.addCommand(CommandIDs.open, {
      label: 'Wiz: Open the Sidebar',
      caption: "Show the workspace's agents, jobs and schedules",
      execute: () => app.shell.activateById(SIDEBAR_ID)
    });

    app.commands.addCommand(CommandIDs.openJob, {
      label: args => (args.id ? `Wiz: Show Job ${args.id}` : 'Wiz: Show a Job'),
      caption: "Open a job's detail in the Wiz sidebar",
      execute: args => {
        const id = Number(args.id);
        app.shell.activateById(SIDEBAR_ID);
        if (Number.isInteger(id) && id > 0) {
          sidebar.showJob(id);
        }
      }
    });

    void app.restored.then(() => {
      notifier.start();
      followActiveKernel(app, sidebar); // the sidebar shows the active notebook's workspace
    });

    app.commands.addCommand(CommandIDs.chat, {
      label: args => (args.agent ? `Wiz: Chat with ${args.agent}` : 'Wiz: Insert a Chat Cell for an Agent'),
      caption: 'Insert a %wiz chat NAME cell in the current notebook',
      isEnabled: () => currentNotebook(app) !== null,
      execute: async args => {
        let agent = typeof args.agent === 'string' ? args.agent : '';
        if (!agent) {
          let names: string[] = [];
          try {
            names = (await api.agents()).map(a => a.name);
          } catch {
            names = [];
          }
          const answer = await InputDialog.getItem({
            title: 'Chat with which agent?',
            items: names,
            editable: true,
            placeholder: 'agent name'
          });
          if (!answer.button.accept || !answer.value) {
            return false;
          }
          agent = answer.value.trim();
        }
        return agent ? insertChatCell(app, agent) : false;
      }
    });

    if (palette) {
      palette.addItem({ command: CommandIDs.open, category: 'Wiz' });
      palette.addItem({ command: CommandIDs.chat, category: 'Wiz' });
    }
  }
};

export default plugin;
