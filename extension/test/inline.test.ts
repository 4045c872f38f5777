import assert from "node:assert/strict";
import { test } from "node:test";

import { CancellationLike } from "../src/debounce";
import { acceptId, InlineRequest, ItemLike, provideInline } from "../src/inline";
import { OutcomeParams, OutcomeTracker } from "../src/outcomes";
import { normalizeSettings } from "../src/settings";

class Token implements CancellationLike {
  isCancellationRequested = false;
  private listeners: (() => unknown)[] = [];
  onCancellationRequested(l: () => unknown) {
    this.listeners.push(l);
    return { dispose: () => (this.listeners = this.listeners.filter((x) => x !== l)) };
  }
  cancel() {
    this.isCancellationRequested = true;
    for (const l of this.listeners) l();
  }
}

const req = (over: Partial<InlineRequest> = {}): InlineRequest => ({
  uri: "file:///w/a.py", languageId: "python", position: { line: 2, character: 4 }, automatic: true, ...over,
});
const item = (id: string, text: string): ItemLike => ({
  insertText: text, range: { start: { line: 2, character: 4 } },
  command: { command: "ghostline.accepted", arguments: [id] },
});

function harness(settings = normalizeSettings({ debounceMs: 30 })) {
  const sent: OutcomeParams[] = [];
  const tracker = new OutcomeTracker((p) => sent.push(p));
  let calls = 0;
  const next = (result: unknown) => () => {
    calls++;
    return Promise.resolve(result as ItemLike[]);
  };
  return { sent, tracker, next, calls: () => calls, settings };
}

test("acceptId reads the completion id from Ghostline's command only", () => {
  assert.equal(acceptId({ command: "ghostline.accepted", arguments: ["x1"] }), "x1");
  assert.equal(acceptId({ command: "other", arguments: ["x1"] }), undefined);
  assert.equal(acceptId({ command: "ghostline.accepted", arguments: [3] }), undefined);
  assert.equal(acceptId(undefined), undefined);
});

test("disabled globally or for the language: no items and no server call", async () => {
  for (const settings of [normalizeSettings({ enable: false }), normalizeSettings({ languages: { python: false } })]) {
    const h = harness(settings);
    const r = await provideInline(req(), new Token(), h.next([item("a", "x")]), settings, h.tracker);
    assert.deepEqual(r, []);
    assert.equal(h.calls(), 0);
    assert.equal(h.sent.length, 0);
  }
});

test("debounced: a request cancelled while waiting never reaches the server", async () => {
  const h = harness();
  const token = new Token();
  const p = provideInline(req(), token, h.next([item("a", "x")]), h.settings, h.tracker);
  setTimeout(() => token.cancel(), 5);
  assert.deepEqual(await p, []);
  assert.equal(h.calls(), 0);
});

test("after the debounce the server's items go to VS Code and 'shown' is reported", async () => {
  const h = harness();
  const t0 = Date.now();
  const result = [item("a", " + 1")];
  const r = await provideInline(req(), new Token(), h.next(result), h.settings, h.tracker);
  assert.ok(Date.now() - t0 >= 25, "waited for the debounce");
  assert.equal(r, result);
  assert.deepEqual(h.sent, [{ id: "a", outcome: "shown" }]);
  assert.equal(h.tracker.currentId, "a");
});

test("explicit trigger skips the debounce; InlineCompletionList results work too", async () => {
  const h = harness(normalizeSettings({ debounceMs: 2000 }));
  const t0 = Date.now();
  const list = { items: [item("b", "x")] };
  assert.equal(await provideInline(req({ automatic: false }), new Token(), h.next(list), h.settings, h.tracker), list);
  assert.ok(Date.now() - t0 < 1000);
  assert.deepEqual(h.sent, [{ id: "b", outcome: "shown" }]);
});

test("cancelled while the server works: result passed through, nothing reported", async () => {
  const h = harness(normalizeSettings({ debounceMs: 0 }));
  const token = new Token();
  const next = () => {
    token.cancel();
    return Promise.resolve([item("c", "x")]);
  };
  await provideInline(req(), token, next, h.settings, h.tracker);
  assert.equal(h.sent.length, 0);
});

test("an empty answer ends what was shown before", async () => {
  const h = harness(normalizeSettings({ debounceMs: 0 }));
  await provideInline(req(), new Token(), h.next([item("a", "x")]), h.settings, h.tracker);
  await provideInline(req(), new Token(), h.next(null), h.settings, h.tracker);
  h.tracker.flush();
  assert.deepEqual(h.sent.map((s) => `${s.id}:${s.outcome}:${s.reason ?? ""}`), ["a:shown:", "a:ignored:dismissed"]);
});
