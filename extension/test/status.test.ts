import assert from "node:assert/strict";
import { test } from "node:test";

import { parseStatus, statusView } from "../src/status";

test("server status notifications are parsed defensively", () => {
  assert.deepEqual(parseStatus({ state: "ready", model: "qwen", message: 3 }), { state: "ready", model: "qwen", message: undefined });
  assert.deepEqual(parseStatus({ state: "loading", model: null, message: "loading x" }), { state: "loading", message: "loading x", model: undefined });
  assert.equal(parseStatus({ state: "weird" }).state, "error");
  assert.match(parseStatus({ state: "weird" }).message ?? "", /unknown server state/);
  assert.equal(parseStatus(null).state, "error");
  assert.equal(parseStatus("ready").state, "error");
});

test("each state has an icon, a label and a tooltip", () => {
  for (const state of ["starting", "loading", "ready", "generating", "disabled", "error", "stopped"] as const) {
    const v = statusView({ state });
    assert.match(v.text, /^\$\([a-z~-]+\) Ghostline$/);
    assert.equal(v.label, `Ghostline ${state}`);
    assert.match(v.tooltip, /^Ghostline: /);
  }
  const err = statusView({ state: "error", message: "model file missing" });
  assert.equal(err.background, "statusBarItem.errorBackground");
  assert.match(err.tooltip, /model file missing/);
  assert.equal(statusView({ state: "ready" }).background, undefined);
  assert.match(statusView({ state: "ready", model: "qwen2.5" }).tooltip, /Model: qwen2.5/);
});

test("ready but off for the active language shows as disabled", () => {
  const v = statusView({ state: "ready" }, false);
  assert.equal(v.label, "Ghostline disabled");
  assert.match(v.tooltip, /this language/);
  assert.equal(statusView({ state: "generating" }, false).label, "Ghostline generating");
});
