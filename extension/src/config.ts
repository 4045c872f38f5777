// The ghostline.* settings as VS Code holds them: read and written here, through the VS Code API; what they
// mean (defaults, normalization, what the server gets) is settings.ts, which has no `vscode` import.
import * as vscode from "vscode";

import { GhostlineSettings, normalizeSettings } from "./settings";

export const SECTION = "ghostline";

function readSettings(): GhostlineSettings {
  const c = vscode.workspace.getConfiguration(SECTION);
  return normalizeSettings({
    enable: c.get("enable"), languages: c.get("languages"), model: c.get("model"), maxTokens: c.get("maxTokens"),
    multiline: c.get("multiline"), debounceMs: c.get("debounceMs"), filterAggressiveness: c.get("filterAggressiveness"),
    telemetryLevel: c.get("telemetryLevel"), pythonPath: c.get("pythonPath"), serverRoot: c.get("serverRoot"),
  });
}

/** The current settings, one copy shared by the language client and the UI. */
export class Config {
  current = readSettings();

  /** Re-reads the settings (after VS Code says they changed); returns the ones before. */
  reload(): GhostlineSettings {
    const before = this.current;
    this.current = readSettings();
    return before;
  }

  /** Writes where the current value comes from (workspace folder, workspace or user settings). */
  async update(key: string, value: unknown): Promise<void> {
    const c = vscode.workspace.getConfiguration(SECTION);
    const info = c.inspect(key);
    const target = info?.workspaceFolderValue !== undefined ? vscode.ConfigurationTarget.WorkspaceFolder
      : info?.workspaceValue !== undefined ? vscode.ConfigurationTarget.Workspace : vscode.ConfigurationTarget.Global;
    await c.update(key, value, target);
    this.current = readSettings();
  }
}
