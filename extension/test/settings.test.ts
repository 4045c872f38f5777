import assert from "node:assert/strict";
import { test } from "node:test";

import {
  DEFAULTS, didChangeConfigurationParams, isEnabledFor, needsRestart, normalizeSettings, serverPayload,
} from "../src/settings";

test("defaults when nothing is configured", () => {
  assert.deepEqual(normalizeSettings(undefined), DEFAULTS);
  assert.deepEqual(normalizeSettings({}), DEFAULTS);
});

test("malformed values fall back to the default, as on the server", () => {
  const s = normalizeSettings({
    enable: "yes", languages: { python: true, markdown: "no", "*": false }, model: "  my.gguf ",
    maxTokens: 100000, debounceMs: -5, multiline: "sometimes", filterAggressiveness: "high",
    telemetryLevel: 3, pythonPath: 7, serverRoot: "/repo",
  });
  assert.equal(s.enable, true);
  assert.deepEqual(s.languages, { python: true, "*": false });
  assert.equal(s.model, "my.gguf");
  assert.equal(s.maxTokens, 128);
  assert.equal(s.debounceMs, 150);
  assert.equal(s.multiline, "auto");
  assert.equal(s.filterAggressiveness, "high");
  assert.equal(s.telemetryLevel, "off");
  assert.equal(s.pythonPath, "");
  assert.equal(s.serverRoot, "/repo");
  assert.deepEqual(normalizeSettings({ languages: ["python"] }).languages, {});
  assert.equal(normalizeSettings({ maxTokens: 12.6 }).maxTokens, 128);
  assert.equal(normalizeSettings({ maxTokens: 512, debounceMs: 0 }).maxTokens, 512);
  assert.equal(normalizeSettings({ debounceMs: Number.NaN }).debounceMs, 150);
  const remote = normalizeSettings({ remoteUrl: " http://gpu:8000/v1 ", remoteTemplate: "gpt", remoteTimeoutMs: 50 });
  assert.deepEqual([remote.remoteUrl, remote.remoteTemplate, remote.remoteTimeoutMs], ["http://gpu:8000/v1", "qwen", 5000]);
});

test("initializationOptions: server keys plus clientTelemetryEnabled, no client-only paths", () => {
  const s = normalizeSettings({ pythonPath: "/usr/bin/python3", serverRoot: "/repo", maxTokens: 32 });
  const payload = serverPayload(s, false);
  assert.deepEqual(payload, {
    enable: true, languages: {}, model: "", maxTokens: 32, multiline: "auto", debounceMs: 150,
    filterAggressiveness: "medium", telemetryLevel: "off", remoteUrl: "", remoteModel: "", remoteTemplate: "qwen",
    remoteTimeoutMs: 5000, remoteLogprobs: false, clientTelemetryEnabled: false,
  });
});

test("didChangeConfiguration nests under settings.ghostline", () => {
  const params = didChangeConfigurationParams(normalizeSettings({ enable: false }), true);
  assert.equal(params.settings.ghostline.enable, false);
  assert.equal(params.settings.ghostline.clientTelemetryEnabled, true);
  assert.deepEqual(Object.keys(params), ["settings"]);
  assert.deepEqual(Object.keys(params.settings), ["ghostline"]);
});

test("per-language enablement follows the server's rule", () => {
  const cases: [boolean, Record<string, boolean>, string, boolean][] = [
    [true, {}, "python", true],
    [false, {}, "python", false],
    [true, { python: false }, "python", false],
    [true, { python: false }, "go", true],
    [true, { "*": false }, "go", false],
    [true, { "*": false, go: true }, "go", true],
    [false, { go: true }, "go", false],
  ];
  for (const [enable, languages, lang, expected] of cases) {
    assert.equal(isEnabledFor({ enable, languages }, lang), expected, JSON.stringify({ enable, languages, lang }));
  }
});

test("only the server location needs a restart", () => {
  const a = normalizeSettings({});
  assert.equal(needsRestart(a, normalizeSettings({ model: "x", enable: false, maxTokens: 3 })), false);
  assert.equal(needsRestart(a, normalizeSettings({ pythonPath: "/p" })), true);
  assert.equal(needsRestart(a, normalizeSettings({ serverRoot: "/r" })), true);
});
