#!/usr/bin/env node
// End-to-end test of the Ghostline extension in a real VS Code (code-server 4.139.1 = VS Code 1.139.1),
// driven through Debian's chromium by playwright-core, with the real server and the real default model.
//
//   node tests/e2e/run.mjs [--keep] [--only NAME]
//
// Needs: `make e2e-setup` (tools in .cache/e2e/) and `make setup` (.venv with the server, the model).
// Builds build/ghostline.vsix when it is missing or older than its sources. Each case gets a fresh profile
// (HOME, TMPDIR, XDG_*, user-data-dir, extensions-dir, a copy of tests/e2e/workspace), its own code-server
// process group (killed at the end) and its own browser. Screenshots and logs of failed cases go to
// artifacts/e2e/. Prints `N passed, N failed` last and exits non-zero on failure.
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import { createRequire } from "node:module";
import * as path from "node:path";

import {
  BASE_SETTINGS, buildVsix, CACHE, CHROMIUM, freshProfile, installExtension, missingTools, modelsDir, PLAYWRIGHT,
  PYTHON, ROOT, sleep, startCodeServer, VSIX, vsixIsStale, writeUserSettings,
} from "../../extension/scripts/code-server.mjs";

const args = process.argv.slice(2);
const KEEP = args.includes("--keep");
const ONLY = args.includes("--only") ? args[args.indexOf("--only") + 1] : undefined;
const ARTIFACTS = path.join(ROOT, "artifacts", "e2e");
const RUNS = path.join(CACHE, "runs");
const GHOST = ".monaco-editor .ghost-text-decoration, .monaco-editor .ghost-text";
const TYPED = "    return n";
const GHOST_TIMEOUT = Number(process.env.GHOSTLINE_E2E_GHOST_TIMEOUT_MS ?? 120_000);

const t0 = Date.now();
const active = new Set(); // cleanups of what is running, for Ctrl+C
const log = (msg) => console.log(`[e2e ${((Date.now() - t0) / 1000).toFixed(1).padStart(5)}s] ${msg}`);

// --- preconditions ---------------------------------------------------------------------------------
function unmet(message) {
  console.error(message);
  console.log("0 passed, 1 failed");
  process.exit(2);
}

function preflight() {
  const missing = missingTools();
  if (missing.length) {
    unmet(`e2e tools missing (${missing.join(", ")}): run \`make e2e-setup\` (extension/scripts/e2e-setup.sh)`);
  }
  const check = spawnSync(PYTHON, ["-c", "import server, pygls, llama_cpp"], { cwd: ROOT, encoding: "utf8" });
  if (check.status !== 0) {
    unmet(`${PYTHON} cannot run the server (${(check.stderr || check.error?.message || "").trim().split("\n").pop()}): run \`make setup\``);
  }
  const list = spawnSync(PYTHON, ["-m", "server.models", "list"], { cwd: ROOT, encoding: "utf8" });
  const def = (list.stdout ?? "").split("\n").find((l) => l.startsWith("*"));
  if (!def || !/\bpresent\b/.test(def)) {
    unmet(`the default model is not provisioned (${def?.trim() ?? list.stderr.trim()}): run \`make setup\``);
  }
  if (vsixIsStale()) {
    log("building build/ghostline.vsix");
    buildVsix();
  }
  log(`vsix ${path.relative(ROOT, VSIX)}; models ${modelsDir()}`);
}

// --- one VS Code session ----------------------------------------------------------------------------
async function openSession(name, settings) {
  fs.mkdirSync(RUNS, { recursive: true });
  const profile = freshProfile(fs.mkdtempSync(path.join(RUNS, `${name}-`)));
  if (typeof settings === "function") settings = settings(profile);
  writeUserSettings(profile.userData, {
    ...BASE_SETTINGS,
    // Keep the word-based suggest widget out of the way: Tab must go to the ghost text.
    "editor.quickSuggestions": { other: "off", comments: "off", strings: "off" },
    "editor.suggestOnTriggerCharacters": false,
    // The shipped learned filter would hold back some of the answers the scenarios wait for; its decisions are
    // tested through the language server (tests/test_lsp_filter.py).
    "ghostline.filterAggressiveness": "off",
    ...settings,
  });
  installExtension(profile);
  const server = await startCodeServer(profile, { logFile: path.join(profile.base, "code-server.log") });
  active.add(server.stop);
  const require = createRequire(path.join(PLAYWRIGHT, "package.json"));
  const { chromium } = require("playwright-core");
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    env: profile.env,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
      "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"],
  });
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  const consoleLog = fs.createWriteStream(path.join(profile.base, "page-console.log"));
  page.on("console", (m) => consoleLog.write(`[${m.type()}] ${m.text()}\n`));
  page.on("pageerror", (e) => consoleLog.write(`[pageerror] ${e.message}\n`));
  await page.goto(server.folderUrl);
  await page.locator(".monaco-workbench").waitFor({ timeout: 60_000 });
  const close = async () => {
    active.delete(close);
    await browser.close().catch(() => undefined);
    consoleLog.end();
    await server.stop();
    active.delete(server.stop);
  };
  active.add(close);
  return { profile, server, page, close };
}

/** All of the extension's output-channel log files (server stderr + window/logMessage + client lines). */
function ghostlineLogs(profile) {
  const found = [];
  const walk = (dir) => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (/ghostline/i.test(p) && p.endsWith(".log")) found.push(p);
    }
  };
  const logs = path.join(profile.userData, "logs");
  if (fs.existsSync(logs)) walk(logs);
  return found.map((p) => fs.readFileSync(p, "utf8")).join("\n");
}

async function waitForLog(profile, pattern, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const m = pattern.exec(ghostlineLogs(profile));
    if (m) return m;
    if (Date.now() > deadline) return null;
    await sleep(250);
  }
}

async function waitForStatus(page, state, timeoutMs = 90_000) {
  const item = page.locator(`.statusbar-item [aria-label="Ghostline ${state}"], .statusbar-item[aria-label="Ghostline ${state}"]`);
  await item.first().waitFor({ state: "visible", timeout: timeoutMs });
}

async function openFile(page, name) {
  const row = page.locator(".explorer-folders-view .monaco-list-row", { hasText: name });
  await row.first().waitFor({ timeout: 30_000 });
  await row.first().click();
  const editor = page.locator(".editor-instance .monaco-editor").first();
  await editor.waitFor({ timeout: 30_000 });
  await page.locator(`.tabs-container .tab[aria-label*="${name}"]`).first().waitFor({ timeout: 30_000 }).catch(() => undefined);
  await editor.locator(".view-lines").click();
  return editor;
}

async function expectLog(profile, text, timeoutMs = 15_000) {
  const escaped = text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  if (!(await waitForLog(profile, new RegExp(`${escaped}\\b`), timeoutMs))) throw new Error(`the log never showed "${text}"`);
}

/** Waits for ghost text and the server's "shown" for it (an id other than `after`). */
async function nextSuggestion(page, profile, after) {
  await page.locator(GHOST).first().waitFor({ state: "visible", timeout: GHOST_TIMEOUT });
  const text = await ghostText(page);
  const deadline = Date.now() + 10_000;
  for (;;) {
    const id = [...ghostlineLogs(profile).matchAll(/ghostline: outcome shown id=(\S+)/g)].map((m) => m[1]).at(-1);
    if (id && id !== after) return { id, text };
    if (Date.now() > deadline) throw new Error("ghost text without a 'shown' outcome in the server log");
    await sleep(200);
  }
}

async function runCommand(page, title) {
  await page.keyboard.press("F1");
  const input = page.locator(".quick-input-widget input");
  await input.waitFor({ timeout: 10_000 });
  await input.fill(`>${title}`);
  const row = page.locator(".quick-input-widget .monaco-list-row", { hasText: title });
  await row.first().waitFor({ timeout: 10_000 });
  await page.keyboard.press("Enter");
  await input.waitFor({ state: "hidden", timeout: 10_000 });
}

/** Ghost text as shown: the first line (inline decoration) plus further lines, non-breaking spaces undone. */
async function ghostText(page) {
  return page.evaluate(() => {
    const first = [...document.querySelectorAll(".monaco-editor .ghost-text-decoration")].map((e) => e.textContent).join("");
    const more = [...document.querySelectorAll(".monaco-editor .ghost-text .view-line")].map((e) => e.textContent);
    return [first, ...more].join("\n").replace(/\u00a0/g, " ");
  });
}

// --- cases ------------------------------------------------------------------------------------------
const cases = [];
const scenario = (name, settings, body) => cases.push({ name, settings, body });

scenario("accept", {}, async ({ page, profile }) => {
  await waitForStatus(page, "ready");
  log("status bar: Ghostline ready");
  const file = path.join(profile.workspace, "main.py");
  const before = fs.readFileSync(file, "utf8");
  await openFile(page, "main.py");
  await page.keyboard.press("Control+End");
  const typedAt = Date.now();
  await page.keyboard.type(TYPED, { delay: 40 });
  await page.locator(GHOST).first().waitFor({ state: "visible", timeout: GHOST_TIMEOUT });
  const ghost = await ghostText(page);
  log(`ghost text ${JSON.stringify(ghost)} ${Date.now() - typedAt} ms after typing started`);
  if (!ghost.trim()) throw new Error("ghost text element is empty");
  await page.screenshot({ path: path.join(ARTIFACTS, "accept-ghost-text.png") });
  await page.keyboard.press("Tab");
  await page.locator(GHOST).first().waitFor({ state: "detached", timeout: 10_000 }).catch(() => undefined);
  await page.keyboard.press("Control+S");
  let after = "";
  const expected = before + TYPED + ghost;
  for (let i = 0; i < 40 && !after.startsWith(expected); i++) {
    await sleep(250);
    after = fs.readFileSync(file, "utf8");
  }
  if (!after.startsWith(expected)) {
    throw new Error(`after Tab + save the file does not hold the suggestion:\nexpected start ${JSON.stringify(expected.slice(before.length))}\ngot ${JSON.stringify(after.slice(before.length))}`);
  }
  log(`file saved with the accepted text: ${JSON.stringify(after.slice(before.length).trimEnd())}`);
  const accepted = await waitForLog(profile, /ghostline: outcome accepted id=(\S+)/, 15_000);
  if (!accepted) throw new Error("the server never logged `ghostline: outcome accepted id=...`");
  const id = accepted[1];
  if (!new RegExp(`ghostline: outcome shown id=${id}\\b`).test(ghostlineLogs(profile))) {
    throw new Error(`the server logged an accept for ${id} but no "shown" for it`);
  }
  log(`server: outcome accepted id=${id} (and shown id=${id})`);
  await page.screenshot({ path: path.join(ARTIFACTS, "accept-after-tab.png") });
  await sleep(2_000); // longer than the tracker's grace period: nothing else may be reported for this id
  const others = ghostlineLogs(profile).match(new RegExp(`ghostline: outcome (ignored|partial) id=${id}\\b`, "g"));
  if (others) throw new Error(`the accepted suggestion was also reported as ${others.join(", ")}`);

  // Esc on a suggestion, and typing something else over one, report it "ignored" to the server.
  await page.keyboard.press("End");
  await page.keyboard.type("\n\ndef square(x):\n", { delay: 40 });
  await page.keyboard.type("return x", { delay: 40 });
  const second = await nextSuggestion(page, profile);
  log(`second suggestion ${JSON.stringify(second.text)} (id ${second.id}); Esc`);
  await page.keyboard.press("Escape");
  await page.locator(GHOST).first().waitFor({ state: "detached", timeout: 10_000 });
  await expectLog(profile, `ghostline: outcome ignored id=${second.id}`);
  log(`server: outcome ignored id=${second.id}`);
  await runCommand(page, "Ghostline: Suggest Here");
  const third = await nextSuggestion(page, profile, second.id);
  log(`third suggestion (Ghostline: Suggest Here) ${JSON.stringify(third.text)} (id ${third.id}); typing over it`);
  await page.keyboard.type("+", { delay: 40 });
  await expectLog(profile, `ghostline: outcome ignored id=${third.id}`);
  log(`server: outcome ignored id=${third.id}`);
  await page.keyboard.press("Escape");
  await page.keyboard.press("Backspace");

  // Accept one word (Ctrl+Right): a partial accept, with the length accepted.
  await runCommand(page, "Ghostline: Suggest Here");
  const fourth = await nextSuggestion(page, profile, third.id);
  log(`fourth suggestion ${JSON.stringify(fourth.text)} (id ${fourth.id}); Ctrl+Right`);
  await page.keyboard.press("Control+ArrowRight");
  const partial = await waitForLog(profile, new RegExp(`ghostline: outcome partial id=${fourth.id} acceptedLength=(\\d+)`), 15_000);
  if (!partial) throw new Error(`accepting a word of ${fourth.id} was not reported as partial`);
  log(`server: outcome partial id=${fourth.id} acceptedLength=${partial[1]}`);
  await page.keyboard.press("Escape");

  // Settings apply without a reload: "Ghostline: Toggle Completions" from the command palette.
  await runCommand(page, "Ghostline: Toggle Completions");
  await waitForStatus(page, "disabled", 30_000);
  if (!(await waitForLog(profile, /\[client\] server status: disabled/, 30_000))) {
    throw new Error("the server never reported state disabled after the toggle (didChangeConfiguration)");
  }
  log("toggled off from the command palette: the server says disabled, no reload");
  const completions = (ghostlineLogs(profile).match(/ completion \S+ python /g) ?? []).length;
  await page.locator(".editor-instance .monaco-editor .view-lines").first().click();
  await page.keyboard.press("Control+End");
  await page.keyboard.type("\n\ndef is_odd(n):\n", { delay: 40 });
  await page.keyboard.type("return n", { delay: 40 });
  await sleep(6_000);
  if (await page.locator(GHOST).count()) throw new Error(`ghost text shown while disabled: ${JSON.stringify(await ghostText(page))}`);
  const now = (ghostlineLogs(profile).match(/ completion \S+ python /g) ?? []).length;
  if (now !== completions) throw new Error(`the server generated ${now - completions} completion(s) while disabled`);
  log("no ghost text and no server completion while disabled");
});

/** Pids of the language servers (python -m server) that this session's code-server started. */
function serverPids(session) {
  const out = spawnSync("ps", ["-eo", "pid=,pgid=,args="], { encoding: "utf8" }).stdout ?? "";
  return out.split("\n").map((l) => l.trim().split(/\s+/)).filter((f) => f.length > 3)
    .filter(([, pgid, ...cmd]) => Number(pgid) === session.server.proc.pid && cmd.join(" ").includes("-m server"))
    .map(([pid]) => Number(pid));
}

scenario("disabled", { "ghostline.enable": false }, async (session) => {
  const { page, profile } = session;
  await waitForStatus(page, "disabled");
  log("status bar: Ghostline disabled (from initializationOptions)");
  await openFile(page, "main.py");
  await page.keyboard.press("Control+End");
  await page.keyboard.type(TYPED, { delay: 40 });
  await sleep(8_000);
  if (await page.locator(GHOST).count()) throw new Error(`ghost text shown while disabled: ${JSON.stringify(await ghostText(page))}`);
  if (/ completion \S+ python /.test(ghostlineLogs(profile))) throw new Error("the server generated a completion while disabled");
  if (!/server started/.test(ghostlineLogs(profile))) throw new Error("the extension's log does not show the server starting");
  log("no ghost text, no server completion");
  // The status bar item opens the menu; "Show logs" opens the Ghostline output channel.
  await page.locator('.statusbar-item [aria-label="Ghostline disabled"], .statusbar-item[aria-label="Ghostline disabled"]').first().click();
  const entries = page.locator(".quick-input-widget .monaco-list-row");
  await entries.first().waitFor({ timeout: 10_000 });
  const labels = (await entries.allInnerTexts()).map((t) => t.replace(/\s+/g, " ").trim());
  for (const want of ["Enable completions", "Show logs", "Open settings", "Restart server"]) {
    if (!labels.some((l) => l.includes(want))) throw new Error(`menu lacks "${want}": ${JSON.stringify(labels)}`);
  }
  await page.locator(".quick-input-widget input").fill("Show logs");
  await page.keyboard.press("Enter");
  await page.locator(".panel .monaco-editor .view-lines", { hasText: "server status: disabled" }).first().waitFor({ timeout: 15_000 });
  log(`menu ${JSON.stringify(labels)}; "Show logs" opened the Ghostline output`);
  await page.screenshot({ path: path.join(ARTIFACTS, "disabled.png") });

  // A crashed server is restarted (languageclient's error handler) and comes back with the same settings.
  const pids = serverPids(session);
  if (pids.length !== 1) throw new Error(`expected one server process, found ${JSON.stringify(pids)}`);
  process.kill(pids[0], "SIGKILL");
  await expectLog(profile, "the server exited unexpectedly; restarting it", 30_000);
  const deadline = Date.now() + 60_000;
  while ((ghostlineLogs(profile).match(/\[client\] server status: disabled/g) ?? []).length < 2) {
    if (Date.now() > deadline) throw new Error("the restarted server never reported its state");
    await sleep(250);
  }
  const now = serverPids(session);
  if (now.length !== 1 || now[0] === pids[0]) throw new Error(`after the crash: server pids ${JSON.stringify(now)}`);
  log(`killed server ${pids[0]}: restarted as ${now[0]}, disabled again`);
});

scenario("no-python", { "ghostline.pythonPath": "/nonexistent/bin/python" }, async ({ page }) => {
  // A Python that cannot run the server: a notification with the fix, and a red status bar item.
  const toast = page.locator(".notifications-toasts .notification-list-item", { hasText: "Ghostline" });
  await toast.first().waitFor({ state: "visible", timeout: 60_000 });
  const text = (await toast.first().innerText()).replace(/\s+/g, " ");
  log(`notification: ${JSON.stringify(text)}`);
  if (!/make setup/.test(text) || !/ghostline\.pythonPath/.test(text)) throw new Error(`the notification does not give the fix: ${text}`);
  await waitForStatus(page, "error", 10_000);
  await page.screenshot({ path: path.join(ARTIFACTS, "no-python.png") });
});

/** A "python" that passes the import check but whose server exits at once (a broken install). */
function fakeDyingPython(profile) {
  const fake = path.join(profile.base, "python-dies");
  fs.writeFileSync(fake, `#!/bin/sh\nif [ "$1" = "-c" ]; then exec "${PYTHON}" "$@"; fi\necho "fake server: exiting" >&2\nexit 3\n`, { mode: 0o755 });
  return fake;
}

scenario("server-dies", (profile) => ({ "ghostline.pythonPath": fakeDyingPython(profile) }), async ({ page, profile }) => {
  // The server exits during start-up: a notification and a red status bar item, not a silent failure.
  const toast = page.locator(".notifications-toasts .notification-list-item", { hasText: "the server did not start" });
  await toast.first().waitFor({ state: "visible", timeout: 60_000 });
  const text = (await toast.first().innerText()).replace(/\s+/g, " ");
  log(`notification: ${JSON.stringify(text)}`);
  if (!text.includes("fake server: exiting")) throw new Error("the notification does not say what the server printed");
  await waitForStatus(page, "error", 30_000);
  await page.screenshot({ path: path.join(ARTIFACTS, "server-dies.png") });
  const starts = (ghostlineLogs(profile).match(/\[error\] fake server: exiting/g) ?? []).length;
  await sleep(5_000);
  const later = (ghostlineLogs(profile).match(/\[error\] fake server: exiting/g) ?? []).length;
  if (later !== starts) throw new Error(`the dead server is still being restarted (${starts} -> ${later} starts)`);
  log(`server started ${starts} time(s), then left stopped with the error shown`);
});

// --- runner -----------------------------------------------------------------------------------------
async function main() {
  preflight();
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  let passed = 0;
  let failed = 0;
  for (const c of cases) {
    if (ONLY && c.name !== ONLY) continue;
    const started = Date.now();
    log(`case ${c.name}: start`);
    for (const stale of [`${c.name}-failure.png`, `${c.name}-logs`]) fs.rmSync(path.join(ARTIFACTS, stale), { recursive: true, force: true });
    let session;
    let ok = false;
    try {
      session = await openSession(c.name, c.settings);
      await c.body(session);
      ok = true;
    } catch (e) {
      console.error(`case ${c.name} FAILED: ${e?.stack ?? e}`);
      if (session) {
        await session.page.screenshot({ path: path.join(ARTIFACTS, `${c.name}-failure.png`) }).catch(() => undefined);
        const dest = path.join(ARTIFACTS, `${c.name}-logs`);
        fs.rmSync(dest, { recursive: true, force: true });
        fs.mkdirSync(dest, { recursive: true });
        fs.writeFileSync(path.join(dest, "ghostline-output.log"), ghostlineLogs(session.profile));
        for (const f of ["code-server.log", "page-console.log"]) {
          const p = path.join(session.profile.base, f);
          if (fs.existsSync(p)) fs.copyFileSync(p, path.join(dest, f));
        }
        console.error(`screenshot and logs: ${path.relative(ROOT, ARTIFACTS)}/${c.name}-failure.png, ${path.relative(ROOT, dest)}/`);
      }
    } finally {
      await session?.close();
      if (session && !KEEP) fs.rmSync(session.profile.base, { recursive: true, force: true });
    }
    log(`case ${c.name}: ${ok ? "passed" : "FAILED"} in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    if (ok) passed++;
    else failed++;
  }
  console.log(`${passed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
}

for (const sig of ["SIGINT", "SIGTERM"]) {
  process.on(sig, async () => {
    console.error(`${sig}: stopping code-server`);
    await Promise.allSettled([...active].map((stop) => stop()));
    process.exit(130);
  });
}
main().catch((e) => {
  console.error(e?.stack ?? e);
  console.log("0 passed, 1 failed");
  process.exit(1);
});
