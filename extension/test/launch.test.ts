import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { test } from "node:test";

import { checkPython, choosePython, findServerRoot, fixMessage, STATUS_COMMANDS, trainArgs, venvPython } from "../src/launch";

const fakeFs = (files: string[]) => (p: string) => files.includes(p);
const main = (root: string) => path.join(root, "server", "__main__.py");

test("server root: setting, then GHOSTLINE_ROOT, then the extension folder, then the build-time repository", () => {
  const exists = fakeFs([main("/a"), main("/b"), main("/ext"), main("/built")]);
  const base = { extensionPath: "/ext", buildRoot: "/built", exists };
  assert.deepEqual(findServerRoot({ ...base, setting: "/a", env: "/b" }), { root: "/a", source: "setting ghostline.serverRoot" });
  assert.deepEqual(findServerRoot({ ...base, setting: "", env: "/b" }), { root: "/b", source: "GHOSTLINE_ROOT" });
  assert.equal(findServerRoot({ ...base, setting: "", env: undefined }).root, "/ext");
  assert.equal(findServerRoot({ ...base, setting: "", env: "", extensionPath: "/nothing" }).root, "/built");
});

test("server root: a wrong explicit choice is reported, not skipped", () => {
  const exists = fakeFs([main("/ext")]);
  const r = findServerRoot({ setting: "/wrong", env: undefined, extensionPath: "/ext", buildRoot: undefined, exists });
  assert.equal(r.root, undefined);
  assert.match(r.problem ?? "", /ghostline.serverRoot is \/wrong, which has no server\/__main__.py/);
  const e = findServerRoot({ setting: "", env: "/wrong", extensionPath: "/ext", buildRoot: undefined, exists });
  assert.match(e.problem ?? "", /GHOSTLINE_ROOT/);
  const none = findServerRoot({ setting: "", env: undefined, extensionPath: "/x", buildRoot: "/y", exists });
  assert.match(none.problem ?? "", /looked in \/x, \/y/);
});

test("python: setting, then the repository's .venv, then the Python extension, then PATH", () => {
  const venv = venvPython("/repo", "linux");
  assert.equal(venv, "/repo/.venv/bin/python");
  assert.equal(venvPython("C:\\repo", "win32").endsWith(path.join(".venv", "Scripts", "python.exe")), true);
  const exists = fakeFs([venv]);
  assert.deepEqual(choosePython({ setting: "/my/python", root: "/repo", exists, platform: "linux" }), { python: "/my/python", source: "setting" });
  assert.deepEqual(choosePython({ setting: "", root: "/repo", pythonExtension: "/pyext", exists, platform: "linux" }), { python: venv, source: "venv" });
  assert.deepEqual(choosePython({ setting: "", root: "/other", pythonExtension: "/pyext", exists, platform: "linux" }), { python: "/pyext", source: "python-extension" });
  assert.deepEqual(choosePython({ setting: "", root: "/other", exists, platform: "linux" }), { python: "python3", source: "path" });
});

function fakeRoot(llama: string): string {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "ghostline-launch-"));
  for (const [mod, body] of [["server", ""], ["pygls", ""], ["llama_cpp", llama]]) {
    fs.mkdirSync(path.join(root, mod));
    fs.writeFileSync(path.join(root, mod, "__init__.py"), body);
  }
  return root;
}

const python = process.env.GHOSTLINE_TEST_PYTHON ?? "python3";

test("pre-flight check passes when the three modules import (cwd is the server root)", async () => {
  const root = fakeRoot("");
  try {
    assert.deepEqual(await checkPython(python, root), { ok: true });
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
});

test("pre-flight check names the module that fails and the message says make setup", async () => {
  const root = fakeRoot("raise ImportError('libllama.so: cannot open shared object file')");
  try {
    const r = await checkPython(python, root);
    assert.equal(r.ok, false);
    if (r.ok || r.kind !== "missing-modules") throw new Error(`unexpected ${JSON.stringify(r)}`);
    assert.deepEqual(r.missing.map((m) => m.module), ["llama_cpp"]);
    assert.match(r.missing[0].error, /ImportError: libllama.so/);
    const msg = fixMessage(r, { python: "/repo/.venv/bin/python", source: "venv" }, "/repo");
    assert.match(msg, /cannot import llama_cpp/);
    assert.match(msg, /make setup/);
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
});

test("pre-flight check: a Python that does not exist", async () => {
  const r = await checkPython("/nonexistent/bin/python", os.tmpdir());
  assert.equal(r.ok, false);
  if (r.ok) return;
  assert.equal(r.kind, "no-python");
  const msg = fixMessage(r, { python: "/repo/.venv/bin/python", source: "venv" }, "/repo");
  assert.match(msg, /not found/);
  assert.match(msg, /make setup/);
  const fromSetting = fixMessage(r, { python: "/bad", source: "setting" }, "/repo");
  assert.match(fromSetting, /ghostline.pythonPath/);
});

test("pre-flight check: a Python that fails some other way, and one that hangs", async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "ghostline-py-"));
  try {
    const broken = path.join(dir, "python");
    fs.writeFileSync(broken, "#!/bin/sh\necho 'boom' >&2\nexit 1\n", { mode: 0o755 });
    const r = await checkPython(broken, dir);
    assert.equal(r.ok, false);
    if (!r.ok) {
      assert.equal(r.kind, "failed");
      assert.match(r.detail, /boom/);
    }
    const slow = path.join(dir, "slow");
    fs.writeFileSync(slow, "#!/bin/sh\nexec sleep 30\n", { mode: 0o755 });
    const t = await checkPython(slow, dir, process.env, 300);
    assert.equal(t.ok, false);
    if (!t.ok) assert.match(t.detail, /did not answer/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test("Train Now fine-tunes on the open folder and promotes only a better adapter; status lists adapters and schedule", () => {
  const args = trainArgs("/home/u/project");
  assert.deepEqual(args.slice(0, 2), ["-m", "training.finetune"]);
  assert.equal(args[args.indexOf("--workspace") + 1], "/home/u/project");
  assert.ok(args.includes("--promote"));
  assert.deepEqual(STATUS_COMMANDS.map((c) => c[1]), ["training.models", "training.schedule"]);
});
