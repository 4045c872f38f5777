#!/usr/bin/env node
// `make run-vscode`: VS Code (code-server) on http://127.0.0.1:$PORT with the Ghostline .vsix installed and a
// workspace open; stays in the foreground until Ctrl+C, then stops code-server with its whole process group.
//
//   PORT=8080 WORKSPACE=/path/to/folder node extension/scripts/run-vscode.mjs
//
// The profile (settings, installed extension) lives in .cache/e2e/run-vscode/ and is kept between runs; the
// default workspace is a copy of tests/e2e/workspace made there on the first run. HOME stays yours, so the
// server finds the model where `make setup` put it.
import * as fs from "node:fs";
import * as path from "node:path";

import {
  BASE_SETTINGS, buildVsix, CACHE, installExtension, missingTools, NODE24_BIN, SAMPLE_WORKSPACE, ROOT, startCodeServer,
  vsixIsStale, writeUserSettings,
} from "./code-server.mjs";

const missing = missingTools();
if (missing.length) {
  console.error(`missing ${missing.join(", ")}: run \`make e2e-setup\``);
  process.exit(2);
}
if (vsixIsStale()) {
  console.log("building build/ghostline.vsix");
  buildVsix();
}

const base = path.join(CACHE, "run-vscode");
const profile = {
  base,
  userData: path.join(base, "user-data"),
  extensions: path.join(base, "extensions"),
  workspace: process.env.WORKSPACE ? path.resolve(process.env.WORKSPACE) : path.join(base, "workspace"),
  env: { ...process.env, PATH: `${NODE24_BIN}:${process.env.PATH}`, GHOSTLINE_ROOT: process.env.GHOSTLINE_ROOT ?? ROOT },
};
fs.mkdirSync(profile.userData, { recursive: true });
if (!process.env.WORKSPACE && !fs.existsSync(profile.workspace)) fs.cpSync(SAMPLE_WORKSPACE, profile.workspace, { recursive: true });
const settingsFile = path.join(profile.userData, "User", "settings.json");
if (!fs.existsSync(settingsFile)) {
  writeUserSettings(profile.userData, { ...BASE_SETTINGS, "workbench.colorTheme": "Default Dark Modern" });
}
installExtension(profile);

const port = Number(process.env.PORT ?? 8080);
const server = await startCodeServer(profile, { port, stdio: ["ignore", "inherit", "inherit"] });
console.log(`\nGhostline in VS Code: ${server.folderUrl}\n(open it in a browser; Ctrl+C stops code-server)\n`);

let stopping = false;
const stop = async () => {
  if (stopping) return;
  stopping = true;
  await server.stop();
  process.exit(0);
};
process.on("SIGINT", stop);
process.on("SIGTERM", stop);
server.proc.on("exit", (code) => {
  if (!stopping) {
    console.error(`code-server exited (${code})`);
    process.exit(code ?? 1);
  }
});
