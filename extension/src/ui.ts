// What the user sees and does: the status bar item, the ghostline.* commands, the menu behind the item, and
// the notification when the server cannot run. What the item shows is decided in status.ts (no `vscode` import).
import { execFile } from "node:child_process";

import * as vscode from "vscode";

import { GhostlineClient } from "./client";
import { Config } from "./config";
import { STATUS_COMMANDS, trainArgs } from "./launch";
import { isEnabledFor } from "./settings";
import { statusView } from "./status";

export class Ui implements vscode.Disposable {
  private readonly item = vscode.window.createStatusBarItem("ghostline.status", vscode.StatusBarAlignment.Right, 100);
  private readonly disposables: vscode.Disposable[] = [];

  constructor(
    private readonly config: Config,
    private readonly client: GhostlineClient,
    private readonly output: vscode.LogOutputChannel,
  ) {
    this.item.name = "Ghostline";
    this.item.command = "ghostline.menu";
    this.render();
    this.item.show();
    const reg = (id: string, fn: (...args: any[]) => unknown) => vscode.commands.registerCommand(id, fn);
    this.disposables.push(
      this.item,
      reg("ghostline.toggle", () => this.toggle()),
      reg("ghostline.trigger", () => this.trigger()),
      reg("ghostline.showLogs", () => this.output.show(true)),
      reg("ghostline.markHelpful", () => this.mark("helpful")),
      reg("ghostline.markUnhelpful", () => this.mark("unhelpful")),
      reg("ghostline.restartServer", () => this.client.restart()),
      reg("ghostline.menu", () => this.menu()),
      reg("ghostline.trainNow", () => this.trainNow()),
      reg("ghostline.trainingStatus", () => this.trainingStatus()),
      reg("ghostline.dismiss", async () => {
        this.client.tracker.dismissed();
        await vscode.commands.executeCommand("editor.action.inlineSuggest.hide");
      }),
      client.onDidChangeStatus(() => this.render()),
      client.onDidFail((message) => this.failed(message)),
    );
  }

  dispose(): void {
    for (const d of this.disposables) d.dispose();
  }

  // --- training ----------------------------------------------------------------------------------
  /** Fine-tune on the open folder in a terminal (progress bars visible); a promoted adapter serves at once. */
  private trainNow(): void {
    const launch = this.client.launch;
    const folder = vscode.workspace.workspaceFolders?.[0]?.uri.fsPath;
    if (!launch || !folder) {
      void vscode.window.showWarningMessage(!launch
        ? "Ghostline: the server has not started, and training runs with its Python."
        : "Ghostline: open a folder to learn from.");
      return;
    }
    const terminal = vscode.window.createTerminal({
      name: "Ghostline training", shellPath: launch.python, shellArgs: trainArgs(folder), cwd: launch.root,
    });
    this.disposables.push(terminal);
    terminal.show();
  }

  /** The adapters, which one serves, and the nightly schedule, in the output channel. */
  private async trainingStatus(): Promise<void> {
    const launch = this.client.launch;
    if (!launch) {
      void vscode.window.showWarningMessage("Ghostline: the server has not started.");
      return;
    }
    for (const args of STATUS_COMMANDS) {
      const text = await new Promise<string>((resolve) => {
        execFile(launch.python, args, { cwd: launch.root, timeout: 60_000 }, (err, stdout, stderr) =>
          resolve(err ? `${args.join(" ")}: ${(stderr || String(err)).trim()}` : stdout.trim()));
      });
      this.output.info(`training status (${args[1]}):\n${text}`);
    }
    this.output.show(true);
  }

  // --- status bar --------------------------------------------------------------------------------
  /** Shows the server's status, and whether completions are on for the active editor's language. */
  render(): void {
    const settings = this.config.current;
    const lang = vscode.window.activeTextEditor?.document.languageId;
    const view = statusView(this.client.status, lang ? isEnabledFor(settings, lang) : settings.enable);
    this.item.text = view.text;
    this.item.tooltip = view.tooltip;
    this.item.accessibilityInformation = { label: view.label };
    this.item.backgroundColor = view.background ? new vscode.ThemeColor(view.background) : undefined;
  }

  /** The server cannot run (the client has logged why and set the error status): say why and offer fixes. */
  private failed(message: string): void {
    void vscode.window.showErrorMessage(message, "Open Settings", "Show Logs", "Retry").then((pick) => {
      if (pick === "Open Settings") void openSettings();
      else if (pick === "Show Logs") this.output.show(true);
      else if (pick === "Retry") void this.client.restart();
    });
  }

  // --- commands ----------------------------------------------------------------------------------
  private async toggle(): Promise<void> {
    await this.update("enable", !this.config.current.enable);
    vscode.window.setStatusBarMessage(`Ghostline ${this.config.current.enable ? "enabled" : "disabled"}`, 2500);
  }

  private async toggleLanguage(languageId: string): Promise<void> {
    const settings = this.config.current;
    const languages = { ...settings.languages, [languageId]: !isEnabledFor({ ...settings, enable: true }, languageId) };
    await this.update("languages", languages);
  }

  private async update(key: string, value: unknown): Promise<void> {
    await this.config.update(key, value);
    this.render();
  }

  private async trigger(): Promise<void> {
    const editor = vscode.window.activeTextEditor;
    if (editor && !isEnabledFor(this.config.current, editor.document.languageId)) {
      const pick = await vscode.window.showInformationMessage(
        `Ghostline is off for ${this.config.current.enable ? editor.document.languageId : "all languages"}.`, "Enable");
      if (pick !== "Enable") return;
      if (!this.config.current.enable) await this.update("enable", true);
      if (!isEnabledFor(this.config.current, editor.document.languageId)) await this.toggleLanguage(editor.document.languageId);
    }
    await vscode.commands.executeCommand("editor.action.inlineSuggest.trigger");
  }

  private mark(kind: "helpful" | "unhelpful"): void {
    const id = this.client.tracker.mark(kind);
    if (id) vscode.window.setStatusBarMessage(`Ghostline: marked the last suggestion ${kind}`, 2500);
    else void vscode.window.showInformationMessage("Ghostline has not shown a suggestion yet.");
  }

  private async menu(): Promise<void> {
    type Entry = vscode.QuickPickItem & { run?: () => unknown };
    const settings = this.config.current;
    const lang = vscode.window.activeTextEditor?.document.languageId;
    const langOn = lang ? isEnabledFor({ ...settings, enable: true }, lang) : true;
    const view = statusView(this.client.status, lang ? isEnabledFor(settings, lang) : true);
    const entries: Entry[] = [
      { label: settings.enable ? "$(circle-slash) Disable completions" : "$(check) Enable completions",
        description: "ghostline.enable", run: () => this.toggle() },
      ...(lang ? [{ label: langOn ? `$(circle-slash) Disable for ${lang}` : `$(check) Enable for ${lang}`,
                    description: "ghostline.languages", run: () => this.toggleLanguage(lang) }] : []),
      { label: "$(lightbulb-sparkle) Suggest here", run: () => this.trigger() },
      { label: "", kind: vscode.QuickPickItemKind.Separator },
      { label: "$(thumbsup) Last suggestion was helpful", run: () => this.mark("helpful") },
      { label: "$(thumbsdown) Last suggestion was unhelpful", run: () => this.mark("unhelpful") },
      { label: "", kind: vscode.QuickPickItemKind.Separator },
      { label: "$(output) Show logs", run: () => this.output.show(true) },
      { label: "$(gear) Open settings", run: () => openSettings() },
      { label: "$(debug-restart) Restart server", run: () => this.client.restart() },
    ];
    const pick = await vscode.window.showQuickPick(entries, { title: view.tooltip.split("\n")[0], placeHolder: "Ghostline" });
    await pick?.run?.();
  }
}

function openSettings(): Thenable<unknown> {
  return vscode.commands.executeCommand("workbench.action.openSettings", "@ext:ghostline.ghostline");
}
