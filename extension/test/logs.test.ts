import assert from "node:assert/strict";
import { test } from "node:test";

import { stderrClassifier } from "../src/logs";

test("python logging lines get their level; continuation lines inherit it", () => {
  const c = stderrClassifier();
  assert.deepEqual(c("raw before any record"), { level: "error", text: "raw before any record" });
  assert.deepEqual(c("2026-11-24 22:01:02,123 INFO server.session: ghostline: outcome accepted id=abc"),
    { level: "info", text: "server.session: ghostline: outcome accepted id=abc" });
  assert.equal(c("2026-11-24 22:01:02,123 WARNING server.lsp: odd").level, "warn");
  assert.equal(c("2026-11-24 22:01:02,123 ERROR server.lsp: boom").level, "error");
  assert.deepEqual(c("Traceback (most recent call last):"), { level: "error", text: "Traceback (most recent call last):" });
  assert.equal(c("2026-11-24 22:01:02,123 DEBUG x: y").level, "debug");
  assert.equal(c("  continuation").level, "debug");
});
