// Where the server is and which Python runs it, and the pre-flight check that turns a missing Python or
// missing packages into a message with the fix. No `vscode` import: unit-tested under plain Node.
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";

export interface RootInputs {
  /** `ghostline.serverRoot` */
  setting: string;
  /** `GHOSTLINE_ROOT` */
  env: string | undefined;
  /** The extension's folder: the repository itself when run from a checkout (F5, --extensionDevelopmentPath). */
  extensionPath: string;
  /** The repository the bundle was built from (baked in by esbuild.mjs). */
  buildRoot: string | undefined;
  exists?: (p: string) => boolean;
}

export interface RootResult {
  root?: string;
  source?: string;
  /** Why no root was found, for the notification. */
  problem?: string;
}

export function isServerRoot(dir: string, exists: (p: string) => boolean = fs.existsSync): boolean {
  return exists(path.join(dir, "server", "__main__.py"));
}

export function findServerRoot(i: RootInputs): RootResult {
  const exists = i.exists ?? fs.existsSync;
  // An explicit choice that is wrong is an error, not something to silently route around.
  for (const [value, source] of [[i.setting, "setting ghostline.serverRoot"], [i.env, "GHOSTLINE_ROOT"]] as const) {
    if (!value) continue;
    const dir = path.resolve(value);
    if (isServerRoot(dir, exists)) return { root: dir, source };
    return { problem: `${source} is ${dir}, which has no server/__main__.py (it should be the Ghostline repository)` };
  }
  const tried: string[] = [];
  for (const [value, source] of [[i.extensionPath, "the extension folder"], [i.buildRoot, "the repository the extension was built from"]] as const) {
    if (!value) continue;
    if (isServerRoot(value, exists)) return { root: value, source };
    tried.push(value);
  }
  return {
    problem: `the Ghostline server was not found (looked in ${tried.join(", ") || "nothing"}); set ghostline.serverRoot ` +
      "or GHOSTLINE_ROOT to your Ghostline repository",
  };
}

export function venvPython(root: string, platform: NodeJS.Platform = process.platform): string {
  return platform === "win32" ? path.join(root, ".venv", "Scripts", "python.exe") : path.join(root, ".venv", "bin", "python");
}

export interface PythonInputs {
  /** `ghostline.pythonPath` */
  setting: string;
  root: string | undefined;
  /** The interpreter the Python extension has selected, if it is installed. */
  pythonExtension?: string;
  exists?: (p: string) => boolean;
  platform?: NodeJS.Platform;
}

export interface PythonChoice {
  python: string;
  source: "setting" | "venv" | "python-extension" | "path";
}

export function choosePython(i: PythonInputs): PythonChoice {
  const exists = i.exists ?? fs.existsSync;
  const platform = i.platform ?? process.platform;
  if (i.setting) return { python: i.setting, source: "setting" };
  if (i.root) {
    const venv = venvPython(i.root, platform);
    if (exists(venv)) return { python: venv, source: "venv" };
  }
  if (i.pythonExtension) return { python: i.pythonExtension, source: "python-extension" };
  return { python: platform === "win32" ? "python" : "python3", source: "path" };
}

export const REQUIRED_MODULES = ["server", "pygls", "llama_cpp"] as const;

// Same as `python -c "import server, pygls, llama_cpp"`, but says which import failed and why.
const CHECK_SCRIPT = [
  "import importlib, json, sys",
  "missing = []",
  `for name in ${JSON.stringify(REQUIRED_MODULES)}:`,
  "    try:",
  "        importlib.import_module(name)",
  "    except Exception as e:",
  "        missing.append([name, f'{type(e).__name__}: {e}'])",
  "print(json.dumps(missing))",
  "sys.exit(3 if missing else 0)",
].join("\n");

export type CheckResult =
  | { ok: true }
  | { ok: false; kind: "no-python"; detail: string }
  | { ok: false; kind: "missing-modules"; missing: { module: string; error: string }[]; detail: string }
  | { ok: false; kind: "failed"; detail: string };

export type SpawnLike = typeof spawn;

/** Runs the import check with the server's own cwd (so `server` resolves from the repository). */
export function checkPython(python: string, cwd: string, env: NodeJS.ProcessEnv = process.env,
                            timeoutMs = 60_000, spawnFn: SpawnLike = spawn): Promise<CheckResult> {
  return new Promise((resolve) => {
    let out = "";
    let err = "";
    let settled = false;
    const settle = (r: CheckResult) => {
      if (!settled) {
        settled = true;
        clearTimeout(timer);
        resolve(r);
      }
    };
    let child: ReturnType<SpawnLike>;
    try {
      child = spawnFn(python, ["-c", CHECK_SCRIPT], { cwd, env, stdio: ["ignore", "pipe", "pipe"] });
    } catch (e) {
      settle({ ok: false, kind: "no-python", detail: String(e) });
      return;
    }
    const timer = setTimeout(() => {
      child.kill();
      settle({ ok: false, kind: "failed", detail: `${python} did not answer within ${timeoutMs / 1000} s` });
    }, timeoutMs);
    child.stdout?.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr?.on("data", (d: Buffer) => (err += d.toString()));
    child.on("error", (e: NodeJS.ErrnoException) => {
      const kind = e.code === "ENOENT" || e.code === "EACCES" ? "no-python" : "failed";
      settle({ ok: false, kind, detail: `${python}: ${e.message}` });
    });
    child.on("close", (code: number | null) => {
      if (code === 0) return settle({ ok: true });
      let missing: [string, string][] | undefined;
      try {
        const parsed: unknown = JSON.parse(out.trim().split("\n").pop() ?? "");
        if (Array.isArray(parsed)) missing = parsed as [string, string][];
      } catch {
        missing = undefined;
      }
      if (code === 3 && missing && missing.length > 0) {
        settle({
          ok: false, kind: "missing-modules",
          missing: missing.map(([module, error]) => ({ module, error })),
          detail: missing.map(([m, e]) => `${m}: ${e}`).join("; "),
        });
      } else {
        settle({ ok: false, kind: "failed", detail: `${python} exited with ${code}: ${(err || out).trim().slice(-500)}` });
      }
    });
  });
}

/** The notification text for a failed check: what is wrong and the one thing to do about it. */
export function fixMessage(r: Exclude<CheckResult, { ok: true }>, python: PythonChoice, root: string): string {
  const setup = `run "make setup" in ${root}`;
  switch (r.kind) {
    case "no-python":
      return python.source === "venv" || python.source === "path"
        ? `Ghostline: no Python environment for the server (${python.python} not found). To fix it, ${setup} (creates .venv with the server), or set ghostline.pythonPath.`
        : `Ghostline: the Python in ${python.source === "setting" ? "ghostline.pythonPath" : "the Python extension"} (${python.python}) cannot be run. Fix the path, or ${setup} and clear ghostline.pythonPath.`;
    case "missing-modules": {
      const names = r.missing.map((m) => m.module).join(", ");
      return `Ghostline: ${python.python} cannot import ${names} (${r.missing[0].error}). To fix it, ${setup}` +
        (python.source === "venv" ? "." : `, or point ghostline.pythonPath at ${venvPython(root)}.`);
    }
    default:
      return `Ghostline: checking the server's Python failed (${r.detail}). Try "make setup" in ${root}.`;
  }
}

/** `python -m training.finetune` on the workspace, promoting the adapter only if it beat the base held out
 * (the running server then swaps to it). */
export function trainArgs(workspace: string): string[] {
  return ["-m", "training.finetune", "--workspace", workspace, "--name", "workspace", "--promote"];
}

/** What "Training Status" runs: the adapters and which serves, then the nightly schedule. */
export const STATUS_COMMANDS: readonly string[][] = [
  ["-m", "training.models", "list"],
  ["-m", "training.schedule", "status"],
];
