// Ghostline for VS Code: starts the Python language server and wires it into VS Code's ghost text.
// The logic worth testing lives in vscode-free modules (settings, debounce, inline, outcomes, status, launch,
// logs). The VS Code side: config.ts reads and writes the settings, client.ts runs the server through
// vscode-languageclient, ui.ts is the status bar, commands and menu; this file creates them and feeds them
// VS Code's events.
import * as vscode from "vscode";

import { GhostlineClient } from "./client";
import { Config, SECTION } from "./config";
import { SelectionKind } from "./outcomes";
import { Ui } from "./ui";

let client: GhostlineClient | undefined;

export async function activate(context: vscode.ExtensionContext): Promise<void> {
  const config = new Config();
  const output = vscode.window.createOutputChannel("Ghostline", { log: true });
  const server = new GhostlineClient(context.extensionPath, config, output);
  client = server;
  const ui = new Ui(config, server, output);
  const tracker = server.tracker;
  const ticker = setInterval(() => tracker.busy && tracker.tick(), 1000);
  context.subscriptions.push(
    { dispose: () => clearInterval(ticker) },
    output, ui, server,
    vscode.workspace.onDidChangeConfiguration((e) => {
      if (!e.affectsConfiguration(SECTION)) return;
      const before = config.reload();
      ui.render();
      server.settingsChanged(before);
    }),
    vscode.env.onDidChangeTelemetryEnabled(() => server.sendConfiguration()),
    // What the user does with the text decides a shown suggestion's outcome (outcomes.ts).
    vscode.workspace.onDidChangeTextDocument((e) => {
      tracker.documentChanged(e.document.uri.toString(), e.contentChanges.map((c) => ({
        range: { start: c.range.start, end: c.range.end }, text: c.text,
      })));
    }),
    vscode.window.onDidChangeTextEditorSelection((e) => {
      if (e.textEditor !== vscode.window.activeTextEditor) return;
      const sel = e.selections;
      const pos = sel.length === 1 && sel[0].isEmpty ? sel[0].active : { line: -1, character: -1 };
      tracker.selectionChanged(e.textEditor.document.uri.toString(), pos, selectionKind(e.kind));
    }),
    vscode.window.onDidChangeActiveTextEditor((editor) => {
      tracker.activeEditorChanged(editor?.document.uri.toString());
      ui.render();
    }),
  );
  void server.start(); // the pre-flight check and the server start must not hold up activation
}

export async function deactivate(): Promise<void> {
  await client?.stop();
  client = undefined;
}

function selectionKind(kind: vscode.TextEditorSelectionChangeKind | undefined): SelectionKind {
  switch (kind) {
    case vscode.TextEditorSelectionChangeKind.Keyboard: return "keyboard";
    case vscode.TextEditorSelectionChangeKind.Mouse: return "mouse";
    case vscode.TextEditorSelectionChangeKind.Command: return "command";
    default: return undefined;
  }
}
