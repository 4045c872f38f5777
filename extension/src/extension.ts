// Ghostline for VS Code: starts the Python language server and wires it into VS Code's ghost text.
// The logic worth testing lives in vscode-free modules (settings, debounce, inline, outcomes, status, launch,
// logs); this file only connects them to the VS Code API and vscode-languageclient.
import * as readline from "node:readline";
import * as vscode from "vscode";
import {
  CloseAction,
  DidChangeConfigurationNotification,
  ErrorHandler,
  LanguageClient,
  LanguageClientOptions,
  Middleware,
  RevealOutputChannelOn,
  ServerOptions,
  State as ClientState,
} from "vscode-languageclient/node";

import { ACCEPT_COMMAND, provideInline } from "./inline";
import { stderrClassifier } from "./logs";
import { checkPython, choosePython, findServerRoot, fixMessage, PythonChoice } from "./launch";
import { OutcomeParams, OutcomeTracker, SelectionKind } from "./outcomes";
import {
  didChangeConfigurationParams, GhostlineSettings, isEnabledFor, needsRestart, normalizeSettings, serverPayload,
} from "./settings";
import { parseStatus, StatusParams, statusView } from "./status";

declare const __GHOSTLINE_BUILD_ROOT__: string | undefined;

// ACCEPT_COMMAND (ghostline.accepted) is registered by vscode-languageclient from the server's
// executeCommandProvider; registering it here would conflict. We only observe it (middleware.executeCommand).
const OUTCOME = "ghostline/outcome";
const STATUS = "ghostline/status";
const SECTION = "ghostline";

let ghostline: Ghostline | undefined;

export async function activate(context: vscode.ExtensionContext): Promise<void> {
  ghostline = new Ghostline(context);
  context.subscriptions.push(ghostline);
  void ghostline.start(); // the pre-flight check and the server start must not hold up activation
}

export async function deactivate(): Promise<void> {
  await ghostline?.stop();
  ghostline = undefined;
}

function readSettings(): GhostlineSettings {
  const c = vscode.workspace.getConfiguration(SECTION);
  return normalizeSettings({
    enable: c.get("enable"), languages: c.get("languages"), model: c.get("model"), maxTokens: c.get("maxTokens"),
    multiline: c.get("multiline"), debounceMs: c.get("debounceMs"), filterAggressiveness: c.get("filterAggressiveness"),
    telemetryLevel: c.get("telemetryLevel"), pythonPath: c.get("pythonPath"), serverRoot: c.get("serverRoot"),
  });
}

class Ghostline implements vscode.Disposable {
  private client: LanguageClient | undefined;
  private settings = readSettings();
  private serverStatus: StatusParams = { state: "starting" };
  private readonly output = vscode.window.createOutputChannel("Ghostline", { log: true });
  private readonly item = vscode.window.createStatusBarItem("ghostline.status", vscode.StatusBarAlignment.Right, 100);
  private readonly tracker = new OutcomeTracker((p) => this.sendOutcome(p));
  private readonly disposables: vscode.Disposable[] = [];
  private readonly ticker: ReturnType<typeof setInterval>;
  private lifecycle: Promise<void> = Promise.resolve(); // start/stop/restart run one at a time
  private stopping = false;
  private lastServerState: string | undefined;
  private stderrTail: string[] = []; // the server's last stderr lines, for a start-up failure message

  constructor(private readonly context: vscode.ExtensionContext) {
    this.item.name = "Ghostline";
    this.item.command = "ghostline.menu";
    this.render();
    this.item.show();
    this.ticker = setInterval(() => this.tracker.busy && this.tracker.tick(), 1000);
    const reg = (id: string, fn: (...args: any[]) => unknown) => vscode.commands.registerCommand(id, fn);
    this.disposables.push(
      this.output, this.item,
      reg("ghostline.toggle", () => this.toggle()),
      reg("ghostline.trigger", () => this.trigger()),
      reg("ghostline.showLogs", () => this.output.show(true)),
      reg("ghostline.markHelpful", () => this.mark("helpful")),
      reg("ghostline.markUnhelpful", () => this.mark("unhelpful")),
      reg("ghostline.restartServer", () => this.restart()),
      reg("ghostline.menu", () => this.menu()),
      reg("ghostline.dismiss", async () => {
        this.tracker.dismissed();
        await vscode.commands.executeCommand("editor.action.inlineSuggest.hide");
      }),
      vscode.workspace.onDidChangeConfiguration((e) => e.affectsConfiguration(SECTION) && this.configurationChanged()),
      vscode.env.onDidChangeTelemetryEnabled(() => this.sendConfiguration()),
      vscode.workspace.onDidChangeTextDocument((e) => {
        this.tracker.documentChanged(e.document.uri.toString(), e.contentChanges.map((c) => ({
          range: { start: c.range.start, end: c.range.end }, text: c.text,
        })));
      }),
      vscode.window.onDidChangeTextEditorSelection((e) => {
        if (e.textEditor !== vscode.window.activeTextEditor) return;
        const sel = e.selections;
        const pos = sel.length === 1 && sel[0].isEmpty ? sel[0].active : { line: -1, character: -1 };
        this.tracker.selectionChanged(e.textEditor.document.uri.toString(), pos, selectionKind(e.kind));
      }),
      vscode.window.onDidChangeActiveTextEditor((editor) => {
        this.tracker.activeEditorChanged(editor?.document.uri.toString());
        this.render();
      }),
    );
  }

  dispose(): void {
    clearInterval(this.ticker);
    for (const d of this.disposables) d.dispose();
  }

  // --- server lifecycle ------------------------------------------------------------------------------
  start(): Promise<void> {
    return this.serialized(() => this.doStart());
  }

  stop(): Promise<void> {
    return this.serialized(() => this.doStop());
  }

  restart(): Promise<void> {
    return this.serialized(async () => {
      this.log("restarting the server");
      await this.doStop();
      await this.doStart();
    });
  }

  private serialized(fn: () => Promise<void>): Promise<void> {
    const next = this.lifecycle.then(fn, fn);
    this.lifecycle = next.catch(() => undefined);
    return next;
  }

  private async doStart(): Promise<void> {
    this.lastServerState = undefined;
    this.stderrTail = [];
    this.setStatus({ state: "starting" });
    const found = findServerRoot({
      setting: this.settings.serverRoot,
      env: process.env.GHOSTLINE_ROOT,
      extensionPath: this.context.extensionPath,
      buildRoot: typeof __GHOSTLINE_BUILD_ROOT__ === "string" ? __GHOSTLINE_BUILD_ROOT__ : undefined,
    });
    if (!found.root) {
      this.fail(`Ghostline: ${found.problem}.`);
      return;
    }
    const root = found.root;
    const python = await this.choosePython(root);
    this.log(`server root ${root} (${found.source}); python ${python.python} (${python.source})`);
    const check = await checkPython(python.python, root);
    if (!check.ok) {
      this.log(`pre-flight check failed: ${check.detail}`);
      this.fail(fixMessage(check, python, root));
      return;
    }
    const client = this.createClient(python.python, root);
    this.client = client;
    try {
      await client.start();
      // start() can resolve although initialize failed, when the process died first: that is a failure.
      if (!client.isRunning()) throw new Error("the server exited during start-up");
      this.log("server started");
    } catch (e) {
      this.client = undefined;
      this.stopping = true; // no restarts of a server that cannot even initialize
      await client.dispose(2000).catch(() => undefined);
      this.stopping = false;
      await new Promise((r) => setTimeout(r, 500)); // let its last stderr lines arrive
      const why = this.stderrTail.at(-1) ?? (e instanceof Error ? e.message : String(e));
      this.fail(`Ghostline: the server did not start (${why}). See the log; "make setup" reinstalls it.`);
    }
  }

  private async doStop(): Promise<void> {
    const client = this.client;
    this.client = undefined;
    this.tracker.flush();
    if (client && client.needsStop()) {
      this.stopping = true;
      try {
        await client.stop(5000);
      } catch (e) {
        this.log(`stopping the server: ${e instanceof Error ? e.message : String(e)}`);
      } finally {
        this.stopping = false;
      }
    }
    this.tracker.reset();
    this.setStatus({ state: "stopped" });
  }

  private async choosePython(root: string): Promise<PythonChoice> {
    const first = choosePython({ setting: this.settings.pythonPath, root });
    if (first.source !== "path") return first;
    return choosePython({ setting: "", root, pythonExtension: await pythonFromExtension() });
  }

  private createClient(python: string, root: string): LanguageClient {
    const serverOptions: ServerOptions = {
      command: python,
      args: ["-m", "server"],
      // stdio without `transport`: TransportKind.stdio would append `--stdio`, which the server rejects.
      options: { cwd: root, env: { ...process.env, PYTHONUNBUFFERED: "1" } },
    };
    let defaultHandler: ErrorHandler | undefined;
    let running = false; // initialized once; only then do crashes lead to restarts
    const handler = () => (defaultHandler ??= client.createDefaultErrorHandler(4));
    const clientOptions: LanguageClientOptions = {
      documentSelector: [{ scheme: "file" }, { scheme: "untitled" }, { scheme: "vscode-notebook-cell" }],
      outputChannel: this.output,
      stdioOptions: {
        stdout: (input, channel) => lines(input, (line) => channel.info(line)),
        stderr: (input, channel) => {
          const classify = stderrClassifier();
          lines(input, (line) => {
            const { level, text } = classify(line);
            channel[level](text);
            if (line.trim()) this.stderrTail = [...this.stderrTail.slice(-4), line.trim()];
          });
        },
      },
      revealOutputChannelOn: RevealOutputChannelOn.Never,
      initializationOptions: () => serverPayload(this.settings, vscode.env.isTelemetryEnabled),
      middleware: this.middleware(),
      errorHandler: {
        error: async (error, message, count) => {
          const result = await handler().error(error, message, count);
          // While starting, the failure is reported once, with the server's own last words (doStart).
          return client.state === ClientState.Running && this.client === client ? result : { ...result, handled: true };
        },
        closed: async () => {
          // Stopping on purpose, or a server that never got through initialize (doStart reports that once,
          // with the server's last words): no restart, no message.
          if (this.stopping || this.client !== client || !running) return { action: CloseAction.DoNotRestart, handled: true };
          const result = await handler().closed();
          this.tracker.reset();
          if (result.action === CloseAction.Restart) {
            this.log("the server exited unexpectedly; restarting it");
            this.setStatus({ state: "starting", message: "restarting after the server exited" });
          } else {
            this.setStatus({ state: "stopped", message: result.message });
          }
          return result; // the client shows result.message (the crash-loop notice) itself
        },
      },
      initializationFailedHandler: (error) => {
        this.log(`initialize failed: ${error instanceof Error ? error.message : String(error)}`);
        return false;
      },
    };
    const client = new LanguageClient("ghostline", "Ghostline", serverOptions, clientOptions);
    client.onNotification(STATUS, (params: unknown) => {
      const status = parseStatus(params);
      if (status.state !== "generating" && status.state !== this.lastServerState) {
        this.log(`server status: ${status.state}${status.message ? ` (${status.message})` : ""}`);
      }
      if (status.state !== "generating") this.lastServerState = status.state;
      this.setStatus(status);
    });
    client.onDidChangeState((e) => {
      if (e.newState === ClientState.Running) running = true;
      if (e.newState === ClientState.Starting) this.setStatus({ state: "starting" });
      else if (e.newState === ClientState.Stopped && !this.stopping && this.client === client
               && this.serverStatus.state !== "stopped") {
        this.setStatus({ state: "stopped", message: "the server is not running" });
      }
    });
    return client;
  }

  private middleware(): Middleware {
    return {
      provideInlineCompletionItems: (document, position, context, token, next) => provideInline(
        { uri: document.uri.toString(), languageId: document.languageId, position,
          automatic: context.triggerKind === vscode.InlineCompletionTriggerKind.Automatic },
        token, () => next(document, position, context, token), this.settings, this.tracker),
      // The server's textDocument/completion is for editors without inline completion; in VS Code it would
      // only duplicate the ghost text in the suggest widget and cost a second generation per keystroke.
      provideCompletionItem: () => undefined,
      executeCommand: (command, args, next) => {
        if (command === ACCEPT_COMMAND && typeof args[0] === "string") {
          this.tracker.accepted(args[0]);
          this.log(`accept command for ${args[0]}`);
        }
        return next(command, args);
      },
    };
  }

  // --- settings ----------------------------------------------------------------------------------
  private configurationChanged(): void {
    const before = this.settings;
    this.settings = readSettings();
    this.render();
    const changed = (Object.keys(this.settings) as (keyof GhostlineSettings)[])
      .filter((k) => JSON.stringify(before[k]) !== JSON.stringify(this.settings[k]));
    if (changed.length) this.log(`settings changed: ${changed.map((k) => `${k}=${JSON.stringify(this.settings[k])}`).join(", ")}`);
    if (needsRestart(before, this.settings)) {
      void this.restart();
    } else {
      this.sendConfiguration();
    }
  }

  private sendConfiguration(): void {
    const client = this.client;
    if (!client?.isRunning()) return;
    client.sendNotification(DidChangeConfigurationNotification.type,
      didChangeConfigurationParams(this.settings, vscode.env.isTelemetryEnabled))
      .catch((e) => this.log(`didChangeConfiguration: ${e}`));
  }

  private sendOutcome(params: OutcomeParams): void {
    const client = this.client;
    if (!client?.isRunning()) return;
    client.sendNotification(OUTCOME, params).catch((e) => this.log(`${OUTCOME}: ${e}`));
  }

  // --- commands ----------------------------------------------------------------------------------
  private async toggle(): Promise<void> {
    await this.update("enable", !this.settings.enable);
    vscode.window.setStatusBarMessage(`Ghostline ${this.settings.enable ? "enabled" : "disabled"}`, 2500);
  }

  private async toggleLanguage(languageId: string): Promise<void> {
    const languages = { ...this.settings.languages, [languageId]: !isEnabledFor({ ...this.settings, enable: true }, languageId) };
    await this.update("languages", languages);
  }

  /** Writes where the current value comes from (workspace folder, workspace or user settings). */
  private async update(key: string, value: unknown): Promise<void> {
    const c = vscode.workspace.getConfiguration(SECTION);
    const info = c.inspect(key);
    const target = info?.workspaceFolderValue !== undefined ? vscode.ConfigurationTarget.WorkspaceFolder
      : info?.workspaceValue !== undefined ? vscode.ConfigurationTarget.Workspace : vscode.ConfigurationTarget.Global;
    await c.update(key, value, target);
    this.settings = readSettings();
    this.render();
  }

  private async trigger(): Promise<void> {
    const editor = vscode.window.activeTextEditor;
    if (editor && !isEnabledFor(this.settings, editor.document.languageId)) {
      const pick = await vscode.window.showInformationMessage(
        `Ghostline is off for ${this.settings.enable ? editor.document.languageId : "all languages"}.`, "Enable");
      if (pick !== "Enable") return;
      if (!this.settings.enable) await this.update("enable", true);
      if (!isEnabledFor(this.settings, editor.document.languageId)) await this.toggleLanguage(editor.document.languageId);
    }
    await vscode.commands.executeCommand("editor.action.inlineSuggest.trigger");
  }

  private mark(kind: "helpful" | "unhelpful"): void {
    const id = this.tracker.mark(kind);
    if (id) vscode.window.setStatusBarMessage(`Ghostline: marked the last suggestion ${kind}`, 2500);
    else void vscode.window.showInformationMessage("Ghostline has not shown a suggestion yet.");
  }

  private async menu(): Promise<void> {
    type Entry = vscode.QuickPickItem & { run?: () => unknown };
    const lang = vscode.window.activeTextEditor?.document.languageId;
    const langOn = lang ? isEnabledFor({ ...this.settings, enable: true }, lang) : true;
    const view = statusView(this.serverStatus, lang ? isEnabledFor(this.settings, lang) : true);
    const entries: Entry[] = [
      { label: this.settings.enable ? "$(circle-slash) Disable completions" : "$(check) Enable completions",
        description: "ghostline.enable", run: () => this.toggle() },
      ...(lang ? [{ label: langOn ? `$(circle-slash) Disable for ${lang}` : `$(check) Enable for ${lang}`,
                    description: "ghostline.languages", run: () => this.toggleLanguage(lang) }] : []),
      { label: "$(lightbulb-sparkle) Suggest here", run: () => this.trigger() },
      { label: "", kind: vscode.QuickPickItemKind.Separator },
      { label: "$(thumbsup) Last suggestion was helpful", run: () => this.mark("helpful") },
      { label: "$(thumbsdown) Last suggestion was unhelpful", run: () => this.mark("unhelpful") },
      { label: "", kind: vscode.QuickPickItemKind.Separator },
      { label: "$(output) Show logs", run: () => this.output.show(true) },
      { label: "$(gear) Open settings", run: () => vscode.commands.executeCommand("workbench.action.openSettings", "@ext:ghostline.ghostline") },
      { label: "$(debug-restart) Restart server", run: () => this.restart() },
    ];
    const pick = await vscode.window.showQuickPick(entries, { title: view.tooltip.split("\n")[0], placeHolder: "Ghostline" });
    await pick?.run?.();
  }

  // --- status ------------------------------------------------------------------------------------
  private setStatus(status: StatusParams): void {
    this.serverStatus = status;
    this.render();
  }

  private render(): void {
    const lang = vscode.window.activeTextEditor?.document.languageId;
    const view = statusView(this.serverStatus, lang ? isEnabledFor(this.settings, lang) : this.settings.enable);
    this.item.text = view.text;
    this.item.tooltip = view.tooltip;
    this.item.accessibilityInformation = { label: view.label };
    this.item.backgroundColor = view.background ? new vscode.ThemeColor(view.background) : undefined;
  }

  /** The server cannot run: say why and how to fix it, keep the reason in the status bar and the log. */
  private fail(message: string): void {
    this.log(message);
    this.setStatus({ state: "error", message });
    void vscode.window.showErrorMessage(message, "Open Settings", "Show Logs", "Retry").then((pick) => {
      if (pick === "Open Settings") void vscode.commands.executeCommand("workbench.action.openSettings", "@ext:ghostline.ghostline");
      else if (pick === "Show Logs") this.output.show(true);
      else if (pick === "Retry") void this.restart();
    });
  }

  private log(line: string): void {
    this.output.info(`[client] ${line}`);
  }
}

function selectionKind(kind: vscode.TextEditorSelectionChangeKind | undefined): SelectionKind {
  switch (kind) {
    case vscode.TextEditorSelectionChangeKind.Keyboard: return "keyboard";
    case vscode.TextEditorSelectionChangeKind.Mouse: return "mouse";
    case vscode.TextEditorSelectionChangeKind.Command: return "command";
    default: return undefined;
  }
}

function lines(input: NodeJS.ReadableStream, each: (line: string) => void): void {
  readline.createInterface({ input, crlfDelay: Infinity, terminal: false, historySize: 0 }).on("line", each);
}

/** The interpreter selected in the Python extension, when it is installed (best effort; never throws). */
async function pythonFromExtension(): Promise<string | undefined> {
  const ext = vscode.extensions.getExtension("ms-python.python");
  if (!ext) return undefined;
  try {
    const api: any = ext.isActive ? ext.exports : await ext.activate();
    const resource = vscode.window.activeTextEditor?.document.uri ?? vscode.workspace.workspaceFolders?.[0]?.uri;
    const active = api?.environments?.getActiveEnvironmentPath?.(resource);
    if (active) {
      const resolved = await api.environments.resolveEnvironment?.(active);
      const exe: unknown = resolved?.executable?.uri?.fsPath ?? active.path;
      if (typeof exe === "string" && exe) return exe;
    }
    const exec: unknown = api?.settings?.getExecutionDetails?.(resource)?.execCommand?.[0];
    return typeof exec === "string" && exec ? exec : undefined;
  } catch {
    return undefined;
  }
}
