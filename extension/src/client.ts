// The Python language server behind vscode-languageclient: finding and checking the Python that runs it,
// starting, restarting and stopping it, the middleware between it and VS Code's inline completion, and the
// notifications both ways. It keeps the server's status; the UI (ui.ts) shows it.
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

import { Config } from "./config";
import { ACCEPT_COMMAND, provideInline } from "./inline";
import { checkPython, choosePython, findServerRoot, fixMessage, PythonChoice } from "./launch";
import { stderrClassifier } from "./logs";
import { OutcomeParams, OutcomeTracker } from "./outcomes";
import { didChangeConfigurationParams, GhostlineSettings, needsRestart, serverPayload } from "./settings";
import { parseStatus, StatusParams } from "./status";

declare const __GHOSTLINE_BUILD_ROOT__: string | undefined;

// ACCEPT_COMMAND (ghostline.accepted) is registered by vscode-languageclient from the server's
// executeCommandProvider; registering it here would conflict. We only observe it (middleware.executeCommand).
const OUTCOME = "ghostline/outcome";
const STATUS = "ghostline/status";

export class GhostlineClient implements vscode.Disposable {
  /** Outcomes of the suggestions this server made go back to it; they are dropped with the server. */
  readonly tracker = new OutcomeTracker((p) => this.sendOutcome(p));
  private readonly statusChanged = new vscode.EventEmitter<StatusParams>();
  private readonly failed = new vscode.EventEmitter<string>();
  /** The server's status (or the client's own, before it runs and after it stopped) changed. */
  readonly onDidChangeStatus = this.statusChanged.event;
  /** The server cannot run: the message says why and how to fix it. */
  readonly onDidFail = this.failed.event;
  private client: LanguageClient | undefined;
  /** The interpreter and server root the server runs with (what the training commands use); set once chosen. */
  launch: { python: string; root: string } | undefined;
  private serverStatus: StatusParams = { state: "starting" };
  private lifecycle: Promise<void> = Promise.resolve(); // start/stop/restart run one at a time
  private stopping = false;
  private lastServerState: string | undefined;
  private stderrTail: string[] = []; // the server's last stderr lines, for a start-up failure message

  constructor(
    private readonly extensionPath: string,
    private readonly config: Config,
    private readonly output: vscode.LogOutputChannel,
  ) {}

  get status(): StatusParams {
    return this.serverStatus;
  }

  dispose(): void {
    this.statusChanged.dispose();
    this.failed.dispose();
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
      setting: this.config.current.serverRoot,
      env: process.env.GHOSTLINE_ROOT,
      extensionPath: this.extensionPath,
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
    this.launch = { python: python.python, root };
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
    const first = choosePython({ setting: this.config.current.pythonPath, root });
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
      initializationOptions: () => serverPayload(this.config.current, vscode.env.isTelemetryEnabled),
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
        token, () => next(document, position, context, token), this.config.current, this.tracker),
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

  // --- settings and outcomes to the server ---------------------------------------------------------
  /** After config.reload(): restarts the server for settings it only reads at start, else tells it. */
  settingsChanged(before: GhostlineSettings): void {
    const after = this.config.current;
    const changed = (Object.keys(after) as (keyof GhostlineSettings)[])
      .filter((k) => JSON.stringify(before[k]) !== JSON.stringify(after[k]));
    if (changed.length) this.log(`settings changed: ${changed.map((k) => `${k}=${JSON.stringify(after[k])}`).join(", ")}`);
    if (needsRestart(before, after)) {
      void this.restart();
    } else {
      this.sendConfiguration();
    }
  }

  sendConfiguration(): void {
    const client = this.client;
    if (!client?.isRunning()) return;
    client.sendNotification(DidChangeConfigurationNotification.type,
      didChangeConfigurationParams(this.config.current, vscode.env.isTelemetryEnabled))
      .catch((e) => this.log(`didChangeConfiguration: ${e}`));
  }

  private sendOutcome(params: OutcomeParams): void {
    const client = this.client;
    if (!client?.isRunning()) return;
    client.sendNotification(OUTCOME, params).catch((e) => this.log(`${OUTCOME}: ${e}`));
  }

  // --- status ------------------------------------------------------------------------------------
  private setStatus(status: StatusParams): void {
    this.serverStatus = status;
    this.statusChanged.fire(status);
  }

  /** The server cannot run: keep the reason in the status bar and the log; the UI tells the user. */
  private fail(message: string): void {
    this.log(message);
    this.setStatus({ state: "error", message });
    this.failed.fire(message);
  }

  private log(line: string): void {
    this.output.info(`[client] ${line}`);
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
